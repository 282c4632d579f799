"""ptycho-train: train a model on one machine from a run file, flags and overrides."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ptycho_torch.cli.common import run_cli
from ptycho_torch.cli.fields import add_field_flags, flag_overrides, parse_set_overrides
from ptycho_torch.config.canonical import TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    parser = argparse.ArgumentParser(
        prog="ptycho-train",
        description="Train PtychoPINN on a scan. Precedence: defaults < --config < data file (N, nphotons) < --set < flags.",
    )
    parser.add_argument("--config", metavar="RUN.yaml", help="Run file (YAML or JSON): training fields, model:, execution:.")
    parser.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="Override any field by dotted key (repeatable), e.g. model.gridsize=2.")
    parser.add_argument("--explain", action="store_true", help="Print every resolved field with its value and source, then exit.")
    parser.add_argument("--resume", choices=("auto", "never"), default="auto", help="'auto' continues from the newest checkpoint in output_dir (default).")
    destinations = add_field_flags(parser, TrainingConfig)
    destinations.update(add_field_flags(parser, ExecutionConfig, path_prefix="execution."))
    return parser, destinations


def _main(argv: Sequence[str] | None) -> int:
    parser, destinations = build_parser()
    args = parser.parse_args(argv)
    from ptycho_torch.factory import create_training_payload

    payload = create_training_payload(
        args.config,
        overrides=parse_set_overrides(args.overrides),
        flag_overrides=flag_overrides(args, destinations),
    )
    if args.explain:
        print(payload.explain())
        print(f"config hash: {payload.config_hash}")
        return 0
    from ptycho_torch.workflows.train import run_training

    result = run_training(payload, resume=args.resume)
    if result.resumed_from is not None:
        print(f"resumed from {result.resumed_from}")
    print(f"model bundle:  {result.bundle_path}")
    print(f"checkpoints:   {result.checkpoint_dir}")
    print(f"logs:          {result.bundle_path.parent / 'logs'}")
    print(f"steps: {result.global_step}, config hash: {result.config_hash}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
