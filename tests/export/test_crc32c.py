"""convscope's CRC-32C (the checksums of TensorBoard's event files) against TensorBoard's own
pure-Python one, at every length where its numpy path changes how it cuts the data."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.export import _crc32c
from convscope.export._crc32c import CHUNK, NUMPY_FROM, crc32c, mask, masked_crc32c

tensorboard_crc = pytest.importorskip("tensorboard.compat.tensorflow_stub.pywrap_tensorflow",
                                      reason="the reference: TensorBoard's CRC-32C (pip install 'convscope[tensorboard]')")

BLOCK = CHUNK * _crc32c._BLOCK_ROWS  # (the data one numpy gather takes)
FOLD = CHUNK * _crc32c._FOLD_IN_TURN  # (the most data whose chunks are folded in turn alone)


def _same(data: bytes) -> None:
    assert crc32c(data) == tensorboard_crc.crc32c(data), len(data)
    assert masked_crc32c(data) == tensorboard_crc.masked_crc32c(data), len(data)


def test_the_check_value_and_the_mask() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0 and masked_crc32c(b"") == tensorboard_crc.masked_crc32c(b"")
    for v in (0, 1, 0x7FFF, 0x8000, 0xE3069283, 0xFFFFFFFF):
        assert mask(v) == tensorboard_crc.u32(((v >> 15) | tensorboard_crc.u32(v << 17)) + 0xA282EAD8)


def test_every_byte_alone() -> None:
    for b in range(256):
        _same(bytes([b]))


def test_lengths_around_every_boundary_of_the_numpy_path() -> None:
    rng = np.random.default_rng(0)
    lengths = {n + d for n in (4, NUMPY_FROM, CHUNK, 2 * CHUNK, 3 * CHUNK, FOLD, 2 * FOLD, 4 * FOLD + CHUNK, BLOCK)
               for d in (-2, -1, 0, 1, 2)}
    for n in sorted(lengths):
        _same(rng.integers(0, 256, n, dtype=np.uint8).tobytes())


def test_random_lengths_and_data() -> None:
    rng = np.random.default_rng(1)
    lengths = np.exp(rng.uniform(0, np.log(1 << 16), 100)).astype(int).tolist()
    for n in [*lengths, 3 * (1 << 20) + 12345]:  # (a few MB: TensorBoard's takes about a second on it)
        _same(rng.integers(0, 256, n, dtype=np.uint8).tobytes())


def test_all_zero_and_all_ones() -> None:
    for n in (1, 3, 4, 5, NUMPY_FROM - 1, NUMPY_FROM, 5 * CHUNK + 7, BLOCK + 3, 2 * BLOCK + 1):
        _same(bytes(n))
        _same(b"\xff" * n)


def test_the_table_loop_and_numpy_agree_at_every_short_length(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    data = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in range(3 * CHUNK + 2)]
    loop = [crc32c(d) for d in data]
    monkeypatch.setattr(_crc32c, "NUMPY_FROM", 1)  # (numpy for all but the empty)
    assert [crc32c(d) for d in data] == loop
    monkeypatch.setattr(_crc32c, "NUMPY_FROM", 1 << 62)  # (the loop for all)
    long = rng.integers(0, 256, 5 * BLOCK // 2 + 3, dtype=np.uint8).tobytes()
    assert crc32c(long) == tensorboard_crc.crc32c(long)


def test_going_on_from_an_earlier_crc_and_other_buffers() -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, 3 * BLOCK + 1000, dtype=np.uint8).tobytes()
    whole = tensorboard_crc.crc32c(data)
    for cut in (0, 1, 5, NUMPY_FROM + 3, CHUNK * 7 + 1, BLOCK + 11, len(data) - 1, len(data)):
        assert crc32c(data[cut:], crc32c(data[:cut])) == whole, cut
    array = np.frombuffer(data, np.uint8)
    assert crc32c(bytearray(data)) == crc32c(memoryview(data)) == crc32c(array) == whole
    assert crc32c(array.view(np.uint32)[:10]) == tensorboard_crc.crc32c(data[:40])  # (any C-contiguous buffer, as bytes)
