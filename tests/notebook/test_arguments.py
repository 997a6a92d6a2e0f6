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
