"""ptycho_torch.physics"""
