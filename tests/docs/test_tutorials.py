"""The tutorials' code runs: every ```python test block of docs/tutorials, as a user would paste it.

Each block runs in a fresh Python process (Keras picks its backend once per process) with the
placeholders the tutorial names filled in (a temporary LOGDIR, no server, few steps). The
block's last line prints how many recordings were made; it must be more than none.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from convscope.cli import _parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```python test\n(.*?)```", re.S)
BLOCKS = [(p.stem, i, code) for p in sorted((DOCS / "tutorials").glob("*.md")) for i, code in enumerate(BLOCK.findall(p.read_text()))]


def test_every_tutorial_is_listed_and_has_its_code_tested() -> None:
    names = {p.stem for p in (DOCS / "tutorials").glob("*.md")}
    assert {"pytorch", "lightning", "keras", "ddp", "notebook", "explorer-onnx", "paraview"} <= names
    assert {"pytorch", "lightning", "keras"} <= {name for name, *_ in BLOCKS}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "index", "code"), BLOCKS, ids=[f"{n}-{i}" for n, i, _ in BLOCKS])
def test_tutorial_code_runs(name: str, index: int, code: str, tmp_path: Path) -> None:
    prelude = f"LOGDIR = {str(tmp_path / 'runs')!r}\nSERVE = False\nSTEPS = 40\n"
    script = tmp_path / f"{name}_{index}.py"
    script.write_text(prelude + textwrap.dedent(code))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recorded = re.search(r"^(\d+) recordings", proc.stdout, re.M)
    assert recorded and int(recorded.group(1)) > 0, proc.stdout[-2000:]
    assert any((tmp_path / "runs").glob("*")), "the run store is empty"


def test_every_command_has_help_with_an_example() -> None:
    parser = _parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    missing = [name for name, sub in commands.items() if "example" not in (sub.format_help() or "").lower()]
    assert not missing, f"commands whose --help shows no example: {missing}"


@pytest.mark.slow
def test_the_pytorch_tutorial_loop_learns(tmp_path: Path) -> None:
    """Its loop as written trains: the loss it logs falls and stays finite (batches taken in the
    bundled digits' order, sorted by class, made it diverge)."""
    import numpy as np

    from convscope.store import RunStore

    code = next(code for name, _, code in BLOCKS if name == "pytorch")
    script = tmp_path / "pytorch.py"
    script.write_text(f"LOGDIR = {str(tmp_path / 'runs')!r}\nSERVE = False\nSTEPS = 300\n" + textwrap.dedent(code))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = RunStore(tmp_path / "runs")
    (run,) = store.run_ids()
    with store.open_run(run) as reader:
        loss = np.concatenate([f.payload["values"] for f in reader.frames(kind="scalars") if f.payload["name"] == "loss"])
    assert len(loss) == 300 and np.isfinite(loss).all(), loss[~np.isfinite(loss)][:5]
    assert loss[-50:].mean() < 0.5 * loss[:10].mean(), (loss[:10].mean(), loss[-50:].mean())
