"""``convscope runs`` colours each status apart: interrupted is neither crashed's nor failed's colour."""

from __future__ import annotations

import json
import re

from convscope.cli import main
from convscope.store import RunStore


def test_runs_shows_an_interrupted_run_in_its_own_colour(tmp_path, capsys, monkeypatch) -> None:
    store = RunStore(tmp_path)
    for status in ("failed", "crashed", "interrupted", "finished"):
        store.create_run(status).close(status=status)
    assert main(["runs", "--logdir", str(tmp_path), "--json"]) == 0
    assert {r["id"]: r["status"] for r in json.loads(capsys.readouterr().out)} == {s: s for s in ("failed", "crashed", "interrupted", "finished")}
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "150")
    assert main(["runs", "--logdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    styles = dict((word, code) for code, word in re.findall(r"\x1b\[([0-9;]+)m(failed|crashed|interrupted)\b", out))
    assert set(styles) == {"failed", "crashed", "interrupted"}, out
    assert len(set(styles.values())) == 3, styles  # three statuses, three colours
    assert "interrupted" in re.sub(r"\x1b\[[0-9;]*m", "", out)
