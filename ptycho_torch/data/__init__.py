"""ptycho_torch.data: scan files (DATA-001 / FORMAT-001), grouping, datasets, the data module.

Typical use::

    reader = open_scan("scan.npz")            # validates the contract now
    groups = build_groups(reader.xcoords, reader.ycoords, gridsize=2, n_groups=512, seed=0)
    dataset = PtychoDataset(reader, groups)   # samples: diffraction/offsets/positions/index
"""

from ptycho_torch.data.contract import CHECK_FRAMES_MAX, DIFFRACTION_KEYS, LegacyLayoutWarning
from ptycho_torch.data.dataset import PtychoDataset, ShardedEpochSampler
from ptycho_torch.data.files import SCAN_SUFFIXES, open_scan, write_scan
from ptycho_torch.data.grouping import Groups, build_groups
from ptycho_torch.data.hdf5 import Hdf5ScanReader, write_scan_hdf5
from ptycho_torch.data.npz import NpzScanReader, write_scan_npz
from ptycho_torch.data.reader import ScanReader

__all__ = [
    "CHECK_FRAMES_MAX",
    "DIFFRACTION_KEYS",
    "SCAN_SUFFIXES",
    "Groups",
    "Hdf5ScanReader",
    "LegacyLayoutWarning",
    "NpzScanReader",
    "PtychoDataModule",
    "PtychoDataset",
    "ScanReader",
    "ShardedEpochSampler",
    "build_groups",
    "open_scan",
    "write_scan",
    "write_scan_hdf5",
    "write_scan_npz",
]


def __getattr__(name: str):
    """Import the Lightning data module lazily (keeps ``import ptycho_torch.data`` light)."""
    if name == "PtychoDataModule":
        from ptycho_torch.data.datamodule import PtychoDataModule

        return PtychoDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
