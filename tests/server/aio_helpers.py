"""Running asyncio code from tests that share a process with Playwright's sync API."""

from __future__ import annotations


def run_async(coro_fn, *args):
    """Run a coroutine function in a fresh event loop on its own thread.

    Playwright's sync API keeps an event loop running on the main thread for the whole
    session, so ``asyncio.run`` cannot be called there once the browser tests have run.
    """
    import asyncio
    import threading

    box: dict = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro_fn(*args))
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join(120)
    if "error" in box:
        raise box["error"]
    return box["value"]
