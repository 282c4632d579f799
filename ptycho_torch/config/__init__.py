"""ptycho_torch.config"""
