"""ptycho-infer: reconstruct a scan with a trained model bundle.

Only the execution settings inference uses have flags (:data:`INFERENCE_EXECUTION_FIELDS`:
what :func:`ptycho_torch.config.bridge.bridge_inference` reads, plus the accelerator the
factory resolves).  An inference file may still carry other ``execution:`` keys (run files
are shared with training); inference ignores them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ptycho_torch.cli.common import run_cli
from ptycho_torch.cli.fields import OneLineParser, add_config_flags, add_field_flags, override_layers
from ptycho_torch.config.canonical import InferenceConfig
from ptycho_torch.config.execution import ExecutionConfig

PROG = "ptycho-infer"

#: The ExecutionConfig fields inference reads (bridge_inference and the factory's accelerator).
INFERENCE_EXECUTION_FIELDS = (
    "accelerator",
    "precision",
    "num_workers",
    "pin_memory",
    "persistent_workers",
    "prefetch_factor",
    "inference_batch_size",
)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    parser = OneLineParser(prog=PROG, description="Reconstruct a scan with a trained PtychoPINN bundle.")
    add_config_flags(parser, config_metavar="INFER.yaml", config_help="Inference file (YAML or JSON) with InferenceConfig fields and execution:.")
    parser.add_argument("--model", dest="field__model_path", metavar="BUNDLE", help="The trained model bundle (model.ptpinn).")
    parser.add_argument("--data", dest="field__test_data_file", metavar="SCAN", help="The scan to reconstruct (NPZ or HDF5).")
    parser.add_argument("--out", dest="field__output_dir", metavar="DIR", help="Output folder.")
    destinations = add_field_flags(parser, InferenceConfig, skip=("model",))
    destinations.update(add_field_flags(parser, ExecutionConfig, path_prefix="execution.", only=INFERENCE_EXECUTION_FIELDS,
                                        title="ExecutionConfig (the settings inference uses)"))
    return parser, destinations


def _main(argv: Sequence[str] | None) -> int:
    parser, destinations = build_parser()
    args = parser.parse_args(argv)
    from ptycho_torch.factory import create_inference_payload

    payload = create_inference_payload(args.config, **override_layers(args, destinations))
    if args.dump_config:
        from ptycho_torch.config.io import dump_run_file, resolved_run_sections

        sections = resolved_run_sections(payload.inference, payload.execution, exclude=("model",),
                                         execution_fields=INFERENCE_EXECUTION_FIELDS)
        path = dump_run_file(args.dump_config, sections, command=" ".join([PROG, *(argv if argv is not None else sys.argv[1:])]))
        print(f"wrote the resolved inference file to {path} (model settings come from the bundle)")
        return 0
    if args.explain:
        print(payload.explain())
        return 0
    from ptycho_torch.workflows.infer import run_inference, summary_lines

    result = run_inference(payload)
    print("\n".join(summary_lines(result)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
