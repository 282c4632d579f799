"""ptycho_torch.evaluate"""
