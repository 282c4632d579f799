"""``ptycho-simulate``: write a simulated, contract-valid scan (NPZ).

    ptycho-simulate --out data/lines.npz
    ptycho-simulate --out data/dl.npz --object dead_leaves --probe curved --nphotons 1e4 --seed 3
    ptycho-simulate --out data/rand.npz --config sim.yaml --scan random --n-images 500
    ptycho-simulate --config sim.yaml --seed 4 --dump-config resolved.yaml

One flag per :class:`~ptycho_torch.simulate.simulate.SimulationConfig` field, generated from
the model (its description is the ``--help`` text) by the flag generator every CLI shares
(:mod:`ptycho_torch.cli.fields`).  Flags are spelled with dashes (``--n-images``,
``--object-size``); the old underscore spellings (``--n_images``) are still accepted, so
existing scripts keep working, but are not listed in ``--help``.  ``--dump-config FILE``
writes the resolved config (loadable with ``--config``) and exits without simulating.  Values come, lowest precedence first,
from the field defaults, the ``--config`` file (YAML/JSON mapping of field names, optionally
under a ``simulation:`` key), then the flags.  Any bad value is one line on stderr, exit 2,
and nothing is written.

Progress goes to stderr: a bar on a terminal; otherwise (a log file, a batch job) one line
per chunk when the scan spans more than one chunk; ``--quiet`` silences both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ptycho_torch.cli.common import run_cli
from ptycho_torch.cli.fields import OneLineParser, add_dump_config_flag, add_field_flags, flag_overrides
from ptycho_torch.config.base import check_known_keys
from ptycho_torch.config.io import config_to_dict, dump_run_file, read_mapping
from ptycho_torch.errors import UsageError
from ptycho_torch.simulate.diffraction import chunk_patterns
from ptycho_torch.simulate.simulate import SimulationConfig, write_scan

PROG = "ptycho-simulate"


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The ``ptycho-simulate`` parser (one flag per SimulationConfig field) and its {dest: field}."""
    parser = OneLineParser(
        prog=PROG,
        description="Simulate a ptychography scan (object, probe, scan, Poisson noise) and write a DATA-001 NPZ file.",
    )
    parser.add_argument("--out", default=None, help="Output NPZ path (parent directories are created); required unless --dump-config.")
    parser.add_argument(
        "--config", default=None, help="YAML/JSON file of SimulationConfig fields; flags override it."
    )
    parser.add_argument("--quiet", action="store_true", help="No progress output on stderr.")
    add_dump_config_flag(parser)
    destinations = add_field_flags(parser, SimulationConfig, hidden_underscore_aliases=True)
    return parser, destinations


def resolve_config(args: argparse.Namespace, destinations: dict[str, str]) -> SimulationConfig:
    """Defaults, then the ``--config`` file, then explicit flags -> a validated config."""
    values: dict[str, Any] = {}
    if args.config is not None:
        data = read_mapping(args.config)
        if set(data) == {"simulation"} and isinstance(data["simulation"], dict):
            data = data["simulation"]
        check_known_keys(SimulationConfig, data, prefix=str(args.config))
        values.update(data)
    values.update(flag_overrides(args, destinations))
    return SimulationConfig.from_mapping(values)


_STAGE_LABELS = {"scale": "pass 1/2 (intensity scale)", "noise": "pass 2/2 (noise, write)"}


class ChunkProgress:
    """Progress of the two passes on ``stream``: a tqdm bar on a terminal, else a line per tenth.

    Off a terminal a line is printed when a pass crosses a tenth of its patterns and at its
    end (at most ten lines a pass, however many chunks a long scan takes).

    The first pass (``scale``) measures every pattern's intensity, the second (``noise``)
    draws the counts and writes them; each counts the patterns it has done.
    """

    def __init__(self, total: int, stream: Any = None, *, bar: bool | None = None) -> None:
        self.total, self.stream = total, stream if stream is not None else sys.stderr
        self.bar = self.stream.isatty() if bar is None else bar
        self._bars: dict[str, Any] = {}
        self._done: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.bar:
            previous, self._done[stage] = self._done.get(stage, 0), done
            if done < total and 10 * done // total == 10 * previous // total:
                return
            print(f"{PROG}: {_STAGE_LABELS.get(stage, stage)} {done}/{total} patterns", file=self.stream, flush=True)
            return
        from tqdm import tqdm

        if stage not in self._bars:
            label = _STAGE_LABELS.get(stage, stage)
            self._bars[stage] = tqdm(total=total, desc=label, unit="pattern", file=self.stream, leave=False)
        bar = self._bars[stage]
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _main(argv: Sequence[str] | None) -> int:
    parser, destinations = build_parser()
    args = parser.parse_args(argv)
    cfg = resolve_config(args, destinations)
    if args.dump_config:
        path = dump_run_file(args.dump_config, config_to_dict(cfg), command=" ".join([PROG, *(argv if argv is not None else sys.argv[1:])]))
        print(f"wrote the resolved simulation config to {path}")
        return 0
    if args.out is None:
        raise UsageError("the following arguments are required: --out", where="--out", hint=f"`{PROG} --help` lists every flag")
    progress = None
    if not args.quiet and (sys.stderr.isatty() or cfg.n_positions > chunk_patterns(cfg.N)):
        progress = ChunkProgress(cfg.n_positions)
    try:
        path = write_scan(cfg, args.out, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    print(
        f"wrote {cfg.n_positions} diffraction patterns ({cfg.N}x{cfg.N}; {cfg.object} object "
        f"{cfg.object_size}x{cfg.object_size}, {cfg.probe} probe, {cfg.scan} scan, nphotons={cfg.nphotons:g}, "
        f"seed={cfg.seed}) to {path}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of ``ptycho-simulate``; returns the exit code (0, or 2 for bad input)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
