"""Regenerate override_matrix.md from the config models themselves.

Usage (from the repository root)::

    python plans/active/ADR-003-BACKEND-API/tools/render_override_matrix.py          # rewrite the newest report's matrix
    python plans/active/ADR-003-BACKEND-API/tools/render_override_matrix.py --check  # exit 1 if it is out of date
    python plans/active/ADR-003-BACKEND-API/tools/render_override_matrix.py --stdout

Every row is one field (dotted path for nested models) with its default, the layers that
can set it (lowest precedence first), how to set it on the command line, and a
``file:line`` citation of the line that defines it.  ``tests/docs/test_override_matrix.py``
checks the committed file against the code.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[4]
ADR_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pydantic import BaseModel  # noqa: E402

from ptycho_torch.config.canonical import InferenceConfig, TrainingConfig  # noqa: E402
from ptycho_torch.config.execution import ExecutionConfig  # noqa: E402

#: Fields the factory infers from the training data file (ptycho_torch/factory.py, inspect_training_data).
DATA_FIELDS = ("model.N", "nphotons")

#: (title, model, path prefix, layers lowest -> highest, flag style)
SECTIONS: list[tuple[str, type[BaseModel], str, str]] = [
    ("TrainingConfig (ptycho-train; model.* is ModelConfig)", TrainingConfig, "", "training"),
    ("InferenceConfig (ptycho-infer; model.* comes from the bundle)", InferenceConfig, "", "inference"),
    ("ExecutionConfig (execution: section; ptycho-train and ptycho-infer)", ExecutionConfig, "execution.", "execution"),
]


def cluster_section() -> tuple[str, type[BaseModel], str, str] | None:
    """ClusterConfig (launcher side) when the launcher is importable."""
    try:
        from launcher.config import ClusterConfig
    except ImportError:
        return None
    return ("ClusterConfig (cluster: section; ptycho-launch only)", ClusterConfig, "cluster.", "cluster")


def definition_line(model: type[BaseModel], name: str) -> str:
    """``path/to/file.py:LINE`` of the line in ``model``'s class body that defines ``name``."""
    for cls in model.__mro__:
        if name not in getattr(cls, "__annotations__", {}):
            continue
        lines, start = inspect.getsourcelines(cls)
        pattern = re.compile(rf"^\s+{re.escape(name)}\s*:")
        for offset, line in enumerate(lines):
            if pattern.match(line):
                path = Path(inspect.getsourcefile(cls)).resolve().relative_to(REPO)
                return f"{path.as_posix()}:{start + offset}"
    raise LookupError(f"no definition line for {model.__name__}.{name}")


def leaves(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel], str]]:
    """(dotted path, owning model, field name) for every leaf field, nested models expanded."""
    out: list[tuple[str, type[BaseModel], str]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.extend(leaves(annotation, prefix=f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", model, name))
    return out


def default_text(info: Any) -> str:
    if info.is_required():
        return "(required)"
    value = info.get_default(call_default_factory=True)
    return repr(str(value)) if isinstance(value, Path) else repr(value)


def layers_for(kind: str, path: str) -> str:
    if kind == "training":
        middle = " < data" if path in DATA_FIELDS else ""
        return f"default < file{middle} < override < flag"
    if kind == "inference":
        if path.startswith("model."):
            return "bundle (user value must equal it)"
        return "default < file < override < flag"
    if kind == "execution":
        return "default < file < argument < override < flag"
    return "default < run file < --cluster file < flag"


def cli_text(kind: str, path: str, name: str) -> str:
    if kind == "inference" and path.startswith("model."):
        return "-"
    flag = f"--{name.replace('_', '-')}"
    if kind == "execution":
        from ptycho_torch.cli.infer import INFERENCE_EXECUTION_FIELDS

        return flag if name in INFERENCE_EXECUTION_FIELDS else f"{flag} (not ptycho-infer)"
    return flag


def table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [rule]
    for index, row in enumerate(rows):
        out.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
        if index == 0:
            out.append(rule.replace("-", "="))
    out.append(rule)
    return out


def render() -> str:
    sections = list(SECTIONS)
    extra = cluster_section()
    if extra is not None:
        sections.append(extra)
    text = [
        "# Override matrix: every config field, its sources and precedence",
        "",
        "GENERATED by `python plans/active/ADR-003-BACKEND-API/tools/render_override_matrix.py`",
        "from the config models; do not edit by hand. `tests/docs/test_override_matrix.py` fails when",
        "a field is missing or a `file:line` citation no longer points at the field's definition.",
        "",
        "Layers, lowest precedence first (ptycho_torch/factory.py, `create_training_payload`):",
        "",
        "```text",
        *table(
            [
                ["layer", "provenance source", "what it is"],
                ["default", "default", "the field's default in the config model"],
                ["file", "file:<path> | config", "the run file (--config) or the `config` argument"],
                ["argument", "execution argument", "the `execution=` argument of a factory (execution.* only)"],
                ["data", "data:<scan file>", "model.N from probeGuess's shape, nphotons from _metadata"],
                ["override", "override", "--set key=value (dotted keys), `overrides=` of a factory"],
                ["flag", "flag", "a named CLI flag (--nepochs 5), `flag_overrides=` of a factory"],
                ["bundle", "bundle:<path>", "inference: the model config stored in the trained bundle"],
            ]
        ),
        "```",
        "",
        "A higher layer replaces a lower one; `--explain` shows the winner and what it replaced.",
        "Besides its named flag (column `command line`), every ptycho-train/ptycho-infer field is",
        "reachable as `--set <field>=VALUE` with the dotted path of column `field`.",
        "Each `file:line` cites the line that defines the field.",
    ]
    for title, model, prefix, kind in sections:
        rows = [["field", "default", "sources (lowest < highest)", "command line", "defined at"]]
        for path, owner, name in leaves(model):
            info = owner.model_fields[name]
            rows.append([f"{prefix}{path}", default_text(info), layers_for(kind, path), cli_text(kind, f"{prefix}{path}", name), definition_line(owner, name)])
        text += ["", f"## {title}", "", "```text", *table(rows), "```"]
    return "\n".join(text) + "\n"


def newest_matrix() -> Path:
    """The override_matrix.md of the newest ``reports/<UTC stamp>/phase_b_factories``."""
    candidates = sorted(ADR_DIR.glob("reports/*/phase_b_factories/override_matrix.md"))
    if not candidates:
        raise SystemExit(f"no reports/*/phase_b_factories/override_matrix.md under {ADR_DIR}")
    return candidates[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed matrix differs from the code")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    parser.add_argument("--out", type=Path, help="file to write (default: the newest report's override_matrix.md)")
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    target = args.out or newest_matrix()
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is out of date; regenerate with: python {Path(__file__).relative_to(REPO)}", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
