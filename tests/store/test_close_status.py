"""The statuses a run closes with: ``interrupted`` among them, anything else refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from convscope.errors import StoreError
from convscope.frames import Frame
from convscope.store import RunStore


def test_a_run_closes_interrupted_and_resumes_live(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    w = store.create_run("cut")
    w.write(Frame(run="cut", step=1, kind="scalar", payload={"name": "loss", "value": 1.0}))
    w.close(status="interrupted")
    with store.open_run("cut") as reader:
        assert reader.status() == "interrupted" and reader.info()["status"] == "interrupted"
        assert reader.meta()["ended"] is not None
    assert [r["status"] for r in store.list_runs()] == ["interrupted"]
    # resumable like a failed or crashed run, also where finished runs are not reopened (the server's ingest)
    again = store.resume_run("cut", reopen_finished=False)
    assert again.resumed_from == 1 and store.open_run("cut").status() == "live"
    again.close()
    assert store.open_run("cut").status() == "finished"
    with pytest.raises(StoreError, match="has finished"):
        store.resume_run("cut", reopen_finished=False)


def test_closing_with_an_unknown_status_is_refused_naming_those_accepted(tmp_path: Path) -> None:
    w = RunStore(tmp_path).create_run("r")
    with pytest.raises(StoreError) as err:
        w.close(status="bogus")
    said = str(err.value)
    for status in ("finished", "failed", "crashed", "interrupted"):
        assert f"'{status}'" in said
    assert "'bogus'" in said
    assert not w.closed  # refused before anything happened: the run still closes properly
    w.close(status="interrupted")
    assert RunStore(tmp_path).open_run("r").status() == "interrupted"
