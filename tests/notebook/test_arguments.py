"""``convscope.notebook``'s functions refuse what they cannot show when they are called, before
any server starts, rather than when Jupyter draws the view (or with a page of a run named after
an object's repr)."""

from __future__ import annotations

import pytest
import torch

from convscope import notebook
from convscope.errors import DataError


@pytest.mark.parametrize("height", ["big", 0, -5, 2.5, True])
def test_a_height_that_is_no_number_of_pixels_is_refused(height, tmp_path) -> None:
    # before: accepted, and int(height) failed as Jupyter drew the frame (or drew none)
    servers = dict(notebook._SERVERS)
    for show in (notebook.dashboard, notebook.explorer):
        with pytest.raises(DataError, match=r"height= is the frame's height in pixels \(a positive int, e\.g\. 900\)"):
            show(logdir=tmp_path, height=height)
    assert notebook._SERVERS == servers  # (none started)


def test_dashboard_of_something_that_is_no_run_is_refused(tmp_path) -> None:
    # before: a page of the run "Conv2d(1, 1, kernel_size=(1, 1), stride=(1, 1))", which there is not
    servers = dict(notebook._SERVERS)
    with pytest.raises(DataError, match=r"dashboard\(\) shows a convscope Monitor, a run's id or name \(a str\), or every run \(None\); got Conv2d"):
        notebook.dashboard(torch.nn.Conv2d(1, 1, 1), logdir=tmp_path)
    assert notebook._SERVERS == servers


def test_dashboard_of_a_run_that_is_not_there_names_what_is(tmp_path) -> None:
    # before: a page of a run that does not exist, found out only in the browser
    from convscope.errors import NotFoundError
    from convscope.store import RunStore

    RunStore(tmp_path).create_run("lenet baseline").close()
    servers = dict(notebook._SERVERS)
    with pytest.raises(NotFoundError, match=r"no run with the id or name 'lenet-basline' in .*did you mean 'lenet-baseline'\?"):
        notebook.dashboard("lenet-basline", logdir=tmp_path)
    with pytest.raises(NotFoundError, match=r"no run with the id or name 'x' in .*; that directory does not exist"):
        notebook.dashboard("x", logdir=tmp_path / "nowhere")
    assert notebook._SERVERS == servers  # (none started)


def test_dashboard_of_a_run_by_its_name_opens_the_page_of_its_id(tmp_path) -> None:
    # before: the page of "#/runs/lenet%20baseline", a run id that does not exist
    from convscope.store import RunStore

    store = RunStore(tmp_path)
    store.create_run("lenet baseline").close()
    store.create_run("lenet baseline").close()  # the newer of the two takes the id lenet-baseline-2
    try:
        assert notebook.dashboard("lenet baseline", logdir=tmp_path).url.endswith("#/runs/lenet-baseline-2")
        assert notebook.dashboard("lenet-baseline", logdir=tmp_path).url.endswith("#/runs/lenet-baseline")
    finally:
        notebook.server(tmp_path).stop()
