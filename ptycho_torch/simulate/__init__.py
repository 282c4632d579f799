"""ptycho_torch.simulate"""
