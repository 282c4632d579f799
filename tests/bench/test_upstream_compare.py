"""``bench/upstream_compare.py``: runs without upstream in seconds; rejects a bad upstream path.

Upstream PtychoPINN is not a dependency, so CI runs the ``--smoke`` mode with no upstream
(the project's fp32 and bf16 rows, at gridsize 1 and 2).  When ``PTYCHOPINN_UPSTREAM``
points at a checkout, one more test runs the smoke mode against it and checks that its
rows and the ratios are filled in and that this project's modules are back in place.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "upstream_compare.py"
ROWS = {("train", 1, 2), ("train", 2, 2), ("infer", 1, 2), ("infer", 2, 2)}


def _load():
    spec = importlib.util.spec_from_file_location("bench_upstream_compare", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load()


def _positive(entry) -> bool:
    return isinstance(entry, dict) and "error" not in entry and math.isfinite(entry["median"]) and entry["median"] > 0


def test_smoke_without_upstream_measures_the_project_rows(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(bench.ENV_VAR, raising=False)
    monkeypatch.setattr(bench, "locate_upstream", lambda arg: (None, ""))  # even if one is installed here
    out = tmp_path / "uc.json"
    returned = bench.main(["--smoke", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))
    assert "upstream: not found" in capsys.readouterr().out
    assert written["upstream"]["found"] is False and written["smoke"] is True
    assert {(r["kind"], r["gridsize"], r["batch"]) for r in written["rows"]} == ROWS
    assert written["architectures"] == ["resunet", "cnn", "cnn+est0"]
    for row in written["rows"]:
        c = row["contenders"]
        assert set(c) == {f"{a}/{p}" for a in ("resunet", "cnn", "cnn+est0") for p in ("fp32", "bf16")}, row
        for arch in ("resunet", "cnn", "cnn+est0"):
            # fp32 and bf16 (network under autocast) at gs1 and gs2, training and inference: no crash
            assert _positive(c[f"{arch}/fp32"]) and _positive(c[f"{arch}/bf16"]), row
            ratios = row["ratios"][arch]
            assert ratios["fp32_over_upstream"] is None
            assert ratios["bf16_over_fp32"] == pytest.approx(c[f"{arch}/bf16"]["median"] / c[f"{arch}/fp32"]["median"])
    assert written["loadavg_1min"]["before"] >= 0


@pytest.mark.parametrize("entry", ["transformer", "cnn+est", "cnn+estX"])
def test_unknown_architecture_exits_2(bench, tmp_path, entry):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--smoke", "--architectures", entry, "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2


def test_est0_builds_the_network_alone(bench):
    """``cnn+est0`` is the CNN on the amplitudes alone (no physics estimate), as upstream's model is."""
    group = bench.synthetic_group(2, 2, 64)
    alone, default = (bench.project_step("infer", 2, 1, 64, group, "fp32", a) for a in ("cnn+est0", "cnn"))
    module_of = lambda fn: next(c.cell_contents for c in fn.__closure__ if hasattr(c.cell_contents, "estimate_iters"))  # noqa: E731
    assert module_of(alone).estimate_iters == 0
    assert module_of(default).estimate_iters > 0


@pytest.mark.parametrize("where", ["missing", "not_a_checkout"])
def test_bad_upstream_path_is_one_line_and_exit_2(bench, tmp_path, capsys, where):
    root = tmp_path / "nowhere" if where == "missing" else tmp_path
    out = tmp_path / "uc.json"
    with pytest.raises(SystemExit) as exc:
        bench.main(["--smoke", "--upstream", str(root), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(root) in err and "ptycho_torch/model.py" in err and "hint" in err
    assert not out.exists()


def test_upstream_that_fails_to_import_names_the_missing_module(bench, tmp_path, capsys):
    pkg = tmp_path / "ptycho_torch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("import module_that_upstream_needs_but_is_absent\n")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--smoke", "--upstream", str(tmp_path), "--out", str(tmp_path / "uc.json")])
    assert exc.value.code == 2
    assert "module_that_upstream_needs_but_is_absent" in capsys.readouterr().err
    import ptycho_torch  # this project's package is back in place

    assert Path(ptycho_torch.__file__).resolve().parents[1] == BENCH.parents[1]


def test_bad_arguments_exit_2(bench, tmp_path):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--gridsizes", "3", "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2


@pytest.mark.skipif(not os.environ.get("PTYCHOPINN_UPSTREAM"), reason="no upstream checkout (set PTYCHOPINN_UPSTREAM)")
def test_smoke_against_upstream_fills_its_rows(bench, tmp_path):
    written = bench.main(["--smoke", "--out", str(tmp_path / "uc.json")])
    assert written["upstream"]["found"] is True
    assert {(r["kind"], r["gridsize"], r["batch"]) for r in written["rows"]} == ROWS
    for row in written["rows"]:
        c = row["contenders"]
        assert _positive(c["upstream/fp32"]), row
        for arch in ("resunet", "cnn"):
            assert row["ratios"][arch]["fp32_over_upstream"] == pytest.approx(
                c[f"{arch}/fp32"]["median"] / c["upstream/fp32"]["median"])
    import ptycho_torch.model  # the project's package (ptycho_torch/model/), not upstream's model.py

    assert Path(ptycho_torch.model.__file__).name == "__init__.py"
