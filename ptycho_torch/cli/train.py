"""ptycho-train: train a model on one machine from a run file, flags and overrides."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ptycho_torch.cli.common import run_cli
from ptycho_torch.cli.fields import OneLineParser, add_config_flags, add_field_flags, override_layers
from ptycho_torch.config.canonical import TrainingConfig
from ptycho_torch.config.execution import ExecutionConfig

PROG = "ptycho-train"


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    parser = OneLineParser(
        prog=PROG,
        description="Train PtychoPINN on a scan. Precedence: defaults < --config < data file (N, nphotons) < --set < flags.",
    )
    add_config_flags(parser, config_metavar="RUN.yaml", config_help="Run file (YAML or JSON): training fields, model:, execution:.")
    parser.add_argument("--resume", choices=("auto", "never"), default="auto", help="'auto' continues from the newest checkpoint in output_dir (default).")
    destinations = add_field_flags(parser, TrainingConfig)
    destinations.update(add_field_flags(parser, ExecutionConfig, path_prefix="execution."))
    return parser, destinations


def _main(argv: Sequence[str] | None) -> int:
    parser, destinations = build_parser()
    args = parser.parse_args(argv)
    from ptycho_torch.factory import create_training_payload

    payload = create_training_payload(args.config, **override_layers(args, destinations))
    if args.dump_config:
        from ptycho_torch.config.io import dump_run_file, resolved_run_sections

        sections = resolved_run_sections(payload.training, payload.execution, cluster=payload.cluster)
        path = dump_run_file(args.dump_config, sections, command=" ".join([PROG, *(argv if argv is not None else sys.argv[1:])]))
        print(f"wrote the resolved run file to {path} (config hash: {payload.config_hash})")
        return 0
    if args.explain:
        print(payload.explain())
        print(f"config hash: {payload.config_hash}")
        return 0
    from ptycho_torch.workflows.logging import METRICS_DIRNAME
    from ptycho_torch.workflows.train import run_training

    result = run_training(payload, resume=args.resume)
    if result.resumed_from is not None:
        print(f"resumed from {result.resumed_from}")
    print(f"model bundle:  {result.bundle_path}")
    print(f"checkpoints:   {result.checkpoint_dir}")
    print(f"logs:          {result.bundle_path.parent / METRICS_DIRNAME}")
    print(f"steps: {result.global_step}, config hash: {result.config_hash}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
