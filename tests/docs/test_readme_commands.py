"""The README's path from a clean clone works: its user commands run as written, CPU-sized.

The first code block under "## What a user does with it" is executed line by line in a fresh
folder holding only what a clone ships (``examples/``), with the quick-try overrides the
README itself shows appended to the training lines.  Not run here, and why:

* ``bash scripts/setup.sh`` (the sentence above the block): it installs packages into the
  current Python (and needs the network); the tests run in the environment it installed.
* the SLURM block (``--nodes 4 --devices 8``, ``status|logs|cancel RUN``, ``sbatch ...``): it
  needs a cluster; the real-SLURM tests (``tests/slurm``, root) cover those paths.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## What a user does with it"


def readme_commands() -> list[str]:
    """The user commands of the README's first code block in SECTION, comments removed."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\n\n((?:    \S.*\n)+)", section)
    assert block, "no indented code block in the README section"
    commands = []
    for line in block.group(1).splitlines():
        command = re.split(r"\s{2,}#", line.strip(), maxsplit=1)[0].strip()
        if command:
            commands.append(command)
    return commands


def quick_try_overrides() -> list[str]:
    """The overrides the README's sentence "for a quick try add `...`" shows."""
    section = README.read_text(encoding="utf-8").split(SECTION, 1)[1]
    match = re.search(r"quick try add\s+`([^`]+)`", " ".join(section.split()))
    assert match, "the README no longer shows the quick-try overrides"
    return shlex.split(match.group(1))


def test_the_readme_block_is_what_this_test_expects():
    commands = readme_commands()
    programs = [shlex.split(c)[0] for c in commands]
    assert set(programs) <= {"ptycho-simulate", "ptycho-train", "ptycho-infer", "ptycho-launch"}, programs
    assert programs[0] == "ptycho-simulate" and "ptycho-infer" in programs
    for command in commands:  # every file a command names ships with the clone or an earlier command writes it
        for token in shlex.split(command):
            if token.startswith("examples/"):
                assert (ROOT / token).is_file(), f"README names {token}, which the repository does not have"
    assert quick_try_overrides()


@pytest.mark.slow
def test_the_readme_commands_run_as_written(tmp_path):
    bin_dir = Path(sys.executable).parent
    for program in ("ptycho-simulate", "ptycho-train", "ptycho-infer", "ptycho-launch"):
        if not (bin_dir / program).exists() and shutil.which(program) is None:
            pytest.fail(f"{program} is not installed: pip install -e . (scripts/setup.sh) first")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # what a clone ships; nothing else is needed
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "2",
           "PTYCHO_RUNS_DIR": str(tmp_path / "runs")}
    quick = quick_try_overrides()
    for command in readme_commands():
        argv = shlex.split(command)
        if argv[0] in ("ptycho-train", "ptycho-launch") and "list" not in argv and "--explain" not in argv:
            argv += quick
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"README command failed: {command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        if argv[0] == "ptycho-infer":
            assert len(done.stdout.strip().splitlines()) <= 15
    assert (tmp_path / "runs" / "lines" / "model.ptpinn").is_file()
    assert (tmp_path / "recon" / "report.png").is_file() and (tmp_path / "recon" / "metrics.json").is_file()
    assert (tmp_path / "recon" / "refinement.json").is_file()
