"""ptycho_torch.workflows"""
