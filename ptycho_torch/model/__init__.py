"""ptycho_torch.model"""
