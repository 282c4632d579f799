"""Simulated ptychography scans: objects, probes, scan patterns, noisy diffraction (numpy only).

The entry points are :class:`SimulationConfig`, :func:`simulate_scan` (arrays) and
:func:`write_scan` (a contract-valid NPZ file); ``ptycho-simulate`` is their CLI.
"""

from ptycho_torch.simulate.diffraction import extract_patches, far_field_intensity, simulate_diffraction
from ptycho_torch.simulate.objects import dead_leaves_object, grf_object, lines_object
from ptycho_torch.simulate.probes import curved_probe, disk_probe
from ptycho_torch.simulate.scans import random_scan, raster_scan
from ptycho_torch.simulate.simulate import (
    SimulationConfig,
    default_simulation_config,
    simulate_scan,
    write_scan,
)

__all__ = [
    "SimulationConfig",
    "default_simulation_config",
    "simulate_scan",
    "write_scan",
    "lines_object",
    "grf_object",
    "dead_leaves_object",
    "disk_probe",
    "curved_probe",
    "random_scan",
    "raster_scan",
    "extract_patches",
    "far_field_intensity",
    "simulate_diffraction",
]
