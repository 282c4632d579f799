"""``ptycho-simulate``: write a simulated, contract-valid scan (NPZ).

    ptycho-simulate --out data/lines.npz
    ptycho-simulate --out data/dl.npz --object dead_leaves --probe curved --nphotons 1e4 --seed 3
    ptycho-simulate --out data/rand.npz --config sim.yaml --scan random --n-images 500

One flag per :class:`~ptycho_torch.simulate.simulate.SimulationConfig` field, generated from
the model (its description is the ``--help`` text).  Values come, lowest precedence first,
from the field defaults, the ``--config`` file (YAML/JSON mapping of field names, optionally
under a ``simulation:`` key), then the flags.  Any bad value is one line on stderr, exit 2,
and nothing is written.

Progress goes to stderr: a bar on a terminal; otherwise (a log file, a batch job) one line
per chunk when the scan spans more than one chunk; ``--quiet`` silences both.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal

from ptycho_torch.cli.common import run_cli
from ptycho_torch.config.base import check_known_keys
from ptycho_torch.config.io import read_mapping
from ptycho_torch.errors import ConfigError
from ptycho_torch.simulate.diffraction import chunk_patterns
from ptycho_torch.simulate.simulate import SimulationConfig, write_scan

PROG = "ptycho-simulate"


class _OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are ConfigErrors (one line, exit 2 via run_cli)."""

    def error(self, message: str) -> typing.NoReturn:  # noqa: D401 - argparse hook
        raise ConfigError(message, where=self.prog, hint=f"run '{self.prog} --help' for the flags")


def _flag_type(annotation: Any) -> tuple[Any, list[Any] | None]:
    """The argparse ``type`` and ``choices`` for a field annotation (Literal, X | None, X)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else str
    if typing.get_origin(annotation) is Literal:
        choices = list(typing.get_args(annotation))
        return type(choices[0]), choices
    if annotation is bool:
        raise TypeError("boolean fields need an explicit flag style")  # none in SimulationConfig today
    return annotation, None


def build_parser() -> argparse.ArgumentParser:
    """The ``ptycho-simulate`` parser, one flag per SimulationConfig field."""
    parser = _OneLineParser(
        prog=PROG,
        description="Simulate a ptychography scan (object, probe, scan, Poisson noise) and write a DATA-001 NPZ file.",
    )
    parser.add_argument("--out", required=True, help="Output NPZ path (parent directories are created).")
    parser.add_argument(
        "--config", default=None, help="YAML/JSON file of SimulationConfig fields; flags override it."
    )
    parser.add_argument("--quiet", action="store_true", help="No progress output on stderr.")
    for name, info in SimulationConfig.model_fields.items():
        flag_type, choices = _flag_type(info.annotation)
        names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        help_text = (info.description or "").replace("%", "%%") + f" [default: {info.default}]"
        parser.add_argument(
            *names, dest=name, type=flag_type, choices=choices, default=argparse.SUPPRESS, help=help_text,
            metavar=None if choices else name.upper(),
        )
    return parser


def resolve_config(args: argparse.Namespace) -> SimulationConfig:
    """Defaults, then the ``--config`` file, then explicit flags -> a validated config."""
    values: dict[str, Any] = {}
    if args.config is not None:
        data = read_mapping(args.config)
        if set(data) == {"simulation"} and isinstance(data["simulation"], dict):
            data = data["simulation"]
        check_known_keys(SimulationConfig, data, prefix=str(args.config))
        values.update(data)
    values.update({name: getattr(args, name) for name in SimulationConfig.model_fields if hasattr(args, name)})
    return SimulationConfig.from_mapping(values)


_STAGE_LABELS = {"scale": "pass 1/2 (intensity scale)", "noise": "pass 2/2 (noise, write)"}


class ChunkProgress:
    """Progress of the two passes on ``stream``: a tqdm bar on a terminal, else one line per chunk.

    The first pass (``scale``) measures every pattern's intensity, the second (``noise``)
    draws the counts and writes them; each counts the patterns it has done.
    """

    def __init__(self, total: int, stream: Any = None, *, bar: bool | None = None) -> None:
        self.total, self.stream = total, stream if stream is not None else sys.stderr
        self.bar = self.stream.isatty() if bar is None else bar
        self._bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.bar:
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
    args = build_parser().parse_args(argv)
    cfg = resolve_config(args)
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
