"""ptycho_torch.cli"""
