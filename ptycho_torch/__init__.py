"""ptycho-torch: the PyTorch backend of PtychoPINN."""

__version__ = "0.1.0"
