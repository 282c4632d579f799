"""ptycho_torch.data"""
