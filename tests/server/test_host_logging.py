"""A server started inside a training process leaves that process's logging as it found it."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from convscope.server import start_local_server


class _ClosingHandler(logging.StreamHandler):
    """Closes its stream when closed, as absl's handler (imported with Keras) and FileHandler do."""

    def close(self) -> None:
        self.stream.close()
        super().close()


def test_starting_a_server_closes_no_handler_of_the_process(tmp_path: Path) -> None:
    # before: uvicorn's default logging config ran logging.config.dictConfig, which closes every
    # handler in the process; absl's closed the stream it bound at import (in pytest, the captured
    # stderr of an earlier test: "ValueError: I/O operation on closed file" in later tests)
    stream = io.StringIO()
    handler = _ClosingHandler(stream)
    host = logging.getLogger("convscope-tests.host")
    host.addHandler(handler)
    try:
        with start_local_server(tmp_path / "runs"):
            pass
        assert not stream.closed
        host.warning("still logging")
        assert stream.getvalue() == "still logging\n"
    finally:
        host.removeHandler(handler)
