"""Every model loader fuzzed with malformed bytes: a model or a clean ConvscopeError, nothing else.

Hypothesis mutates one real, valid file per format (flipped bytes, overwritten runs, cut tails,
inserted junk); each mutant must either load (a change in bytes nobody reads) or raise one of
convscope's own errors with the file's name in it. Any other exception, a crash of the
process or a hang (pytest-timeout) fails the test.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convscope
from convscope.errors import ConvscopeError

pytestmark = pytest.mark.slow


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[str, int, bytes]]:
    ops = st.tuples(
        st.sampled_from(["flip", "overwrite", "cut", "insert"]),
        st.integers(0, 2**31),
        st.binary(min_size=1, max_size=16),
    )
    return draw(st.lists(ops, min_size=1, max_size=4))


def _mutate(data: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for op, at, junk in ops:
        i = at % max(len(buf), 1)
        if op == "flip" and buf:
            buf[i] ^= junk[0] or 0xFF
        elif op == "overwrite":
            buf[i : i + len(junk)] = junk
        elif op == "cut":
            del buf[i:]
        else:
            buf[i:i] = junk
    return bytes(buf)


@pytest.mark.parametrize("ext", [".pt", ".safetensors", ".pt2", ".onnx", ".keras", ".h5"])
def test_mutated_model_files_load_or_fail_cleanly(real_files, ext: str) -> None:
    original = real_files[ext].read_bytes()
    kwargs = {"architecture": "lenet5-simplified"} if ext in (".pt", ".safetensors") else {}
    outcomes: dict[str, int] = {}

    @settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
    @given(ops=mutations())
    def check(ops: list[tuple[str, int, bytes]]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"fuzzed{ext}"
            path.write_bytes(_mutate(original, ops))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # third-party readers may warn about the damage
                    loaded = convscope.load_model(path, **kwargs)
            except ConvscopeError as exc:
                assert "fuzzed" in str(exc), f"the error does not name the file: {exc!r}"
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            else:
                assert loaded.graph.layer_ids(), "a model that loads has layers"
                outcomes["loaded"] = outcomes.get("loaded", 0) + 1

    check()
    print(ext, outcomes)
    assert sum(outcomes.values()) >= 30
    assert set(outcomes) - {"loaded"}, f"no mutant of the {ext} file was refused: {outcomes}"
