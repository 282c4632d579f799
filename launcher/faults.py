"""Fault injection for checking a cluster setup (and for the launcher's own tests).

``PTYCHO_LAUNCH_FAULT=crash@rank=R,step=S`` makes global rank R raise a RuntimeError after
training step S; use it (``--env PTYCHO_LAUNCH_FAULT=crash@rank=1,step=2``) to see that one
failing rank ends the whole job promptly with that rank's error in ``ptycho-launch status``.
Unset (the default), nothing is added to training.
"""

from __future__ import annotations

import os
from typing import Any

FAULT_ENV = "PTYCHO_LAUNCH_FAULT"


def parse_fault(text: str | None) -> dict[str, int] | None:
    """``crash@rank=1,step=2`` -> ``{"rank": 1, "step": 2}``; None when unset; ValueError when malformed."""
    if not text:
        return None
    kind, _, spec = text.partition("@")
    if kind != "crash":
        raise ValueError(f"{FAULT_ENV}: unknown fault {kind!r} (only 'crash@rank=R,step=S')")
    values = dict(item.split("=", 1) for item in spec.split(",") if "=" in item)
    return {"rank": int(values.get("rank", 0)), "step": int(values.get("step", 1))}


def fault_callbacks(rank: int) -> list[Any]:
    """The callbacks that inject the configured fault on this rank (none when unset)."""
    fault = parse_fault(os.environ.get(FAULT_ENV))
    if fault is None or fault["rank"] != rank:
        return []
    from lightning.pytorch.callbacks import Callback

    class Crash(Callback):
        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if trainer.global_step >= fault["step"]:
                raise RuntimeError(f"injected fault ({FAULT_ENV}) on rank {rank} at step {trainer.global_step}")

    return [Crash()]
