"""CRC-32C (Castagnoli) and the masked form of it that TFRecord files (TensorBoard's event files)
hold, fast enough for big files: a few hundred megabytes a second with numpy, where TensorBoard's
own pure-Python one gets through a few megabytes.

The checksum: the reflected polynomial ``0x82F63B78``, the register started at ``0xFFFFFFFF``
and its end value xor-ed with ``0xFFFFFFFF`` (``crc32c(b"123456789") == 0xE3069283``).

How: the register, started at 0, is linear over GF(2) in the bytes. Feeding a byte ``b`` turns
the register ``r`` into ``A(r) ^ T[b]``, with ``T`` the byte table and ``A(r) = T[r & 0xFF] ^
(r >> 8)`` (feeding a zero byte), so the register after bytes ``b_0 .. b_(n-1)`` is the xor of
``A^(n-1-j)(T[b_j])``. The data is cut into chunks of :data:`CHUNK` bytes; a table of 256
entries for each position in a chunk (``A^(CHUNK-1-j)(T[b])``) gives every chunk's register in
one gather and one xor-reduction over all chunks at once. The chunks' registers are then folded
pairwise, each left one carried over its right neighbour's length (``A^m`` for ``m`` a power of
two, as four tables of 256 entries, one per byte of the register, made by squaring ``A``), and
the start value is carried over the whole length in the same way. Leading zero bytes add nothing
to a register started at 0, so a length that is no multiple of the chunk is the end of a chunk
whose start is zeros. Short data (below :data:`NUMPY_FROM` bytes), where numpy's call overhead
costs more than it saves, goes through a plain table loop, four bytes a step.
"""

from __future__ import annotations

import functools
import struct

import numpy as np

__all__ = ["CHUNK", "NUMPY_FROM", "crc32c", "mask", "masked_crc32c"]

POLYNOMIAL = 0x82F63B78  # (reflected)
_ALL = 0xFFFFFFFF

#: the chunk length of the numpy path (a power of two): its position tables hold 128 KiB
CHUNK = 128
_CHUNK_BITS = CHUNK.bit_length() - 1
#: chunks gathered at once (256 KiB of data): their temporaries stay in the CPU's caches
_BLOCK_ROWS = 2048
#: the chunks' registers folded in turn at the end, in Python, rather than pairwise with numpy
_FOLD_IN_TURN = 32
#: the shortest data the numpy path takes (below it, the table loop is faster; measured)
NUMPY_FROM = 256


def _byte_table() -> tuple[int, ...]:
    table = []
    for b in range(256):
        r = b
        for _ in range(8):
            r = (r >> 1) ^ (POLYNOMIAL if r & 1 else 0)
        table.append(r)
    return tuple(table)


def _slice_tables(t0: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """``t0`` and the tables of a byte followed by 1, 2 and 3 zero bytes (four bytes a step)."""
    tables = [t0]
    for _ in range(3):
        prev = tables[-1]
        tables.append(tuple((v >> 8) ^ t0[v & 0xFF] for v in prev))
    return tuple(tables)


_TABLE = _byte_table()
_T0, _T1, _T2, _T3 = _slice_tables(_TABLE)


def mask(crc: int) -> int:
    """TFRecord's mask of a CRC-32C: rotated right by 15 bits, plus ``0xA282EAD8`` (mod 2^32)."""
    return ((((crc >> 15) | (crc << 17)) & _ALL) + 0xA282EAD8) & _ALL


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC-32C of ``data``: the checksum of a TFRecord's length and data (what
    TensorBoard's ``masked_crc32c`` gives).

    Example:
        >>> hex(masked_crc32c(b"123456789"))
        '0xc78ab0e5'
    """
    return mask(crc32c(data))


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The CRC-32C of ``data`` (any C-contiguous buffer); ``crc``: that of the bytes before it,
    to go on from (as ``zlib.crc32`` does).

    Example:
        >>> hex(crc32c(b"123456789"))
        '0xe3069283'
        >>> crc32c(b"6789", crc32c(b"12345")) == crc32c(b"123456789")
        True
    """
    if not isinstance(data, bytes | bytearray):
        data = memoryview(data).cast("B")
    register = (crc & _ALL) ^ _ALL
    if len(data) < NUMPY_FROM:
        register = _loop(register, data)
    else:
        register = _gathered(register, np.frombuffer(data, np.uint8))
    return register ^ _ALL


def _loop(register: int, data: bytes | bytearray | memoryview) -> int:
    """The register after ``data``, four bytes a step (then byte by byte)."""
    t0, t1, t2, t3 = _T0, _T1, _T2, _T3
    words = len(data) >> 2
    for w in struct.unpack_from(f"<{words}I", data):
        r = register ^ w
        register = t3[r & 0xFF] ^ t2[(r >> 8) & 0xFF] ^ t1[(r >> 16) & 0xFF] ^ t0[r >> 24]
    for b in data[words << 2:]:
        register = t0[(register ^ b) & 0xFF] ^ (register >> 8)
    return register


def _gathered(register: int, data: np.ndarray) -> int:
    """The register after ``data`` (uint8), the chunks' registers gathered with numpy."""
    n = data.size
    head = n % CHUNK
    positions, offsets = _positions(), _offsets()
    values = np.empty(n // CHUNK + 1, np.uint32)  # each chunk's register from 0, in order
    # the first `head` bytes: the end of a chunk whose start is zeros
    values[0] = np.bitwise_xor.reduce(positions.take(data[:head] + offsets[CHUNK - head:], mode="clip")) if head else 0
    rows = data[head:].reshape(-1, CHUNK)
    block = max(1, min(len(rows), _BLOCK_ROWS))
    index = np.empty((block, CHUNK), np.intp)
    gathered = np.empty((block, CHUNK), np.uint32)
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        k = len(part)
        np.add(part, offsets, out=index[:k])
        positions.take(index[:k], out=gathered[:k], mode="clip")
        np.bitwise_xor.reduce(gathered[:k], axis=1, out=values[1 + start:1 + start + k])
    # fold pairwise, each left value carried over its right neighbour's length (2^bits bytes);
    # a zero put in front when their number is odd adds nothing (leading zeros). The last few
    # in turn, in Python (a numpy step costs more than a value there)
    bits = _CHUNK_BITS
    while len(values) > _FOLD_IN_TURN:
        if len(values) % 2:
            values = np.concatenate((np.zeros(1, np.uint32), values))
        values = _carry(_power(bits), values[0::2]) ^ values[1::2]
        bits += 1
    t, folded = _power_lists(bits), 0
    for v in values.tolist():
        folded = t[0][folded & 0xFF] ^ t[1][(folded >> 8) & 0xFF] ^ t[2][(folded >> 16) & 0xFF] ^ t[3][folded >> 24] ^ v
    return _shift(register, n) ^ folded


def _zero_byte(v: np.ndarray) -> np.ndarray:
    """``A(v)``: the registers ``v`` (uint32) after one zero byte."""
    return _table_array().take(v & 0xFF) ^ (v >> 8)


@functools.cache
def _table_array() -> np.ndarray:
    return np.array(_TABLE, np.uint32)


@functools.cache
def _positions() -> np.ndarray:
    """The position tables, flat (``CHUNK * 256`` uint32): entry ``256 j + b`` is what byte
    ``b`` at position ``j`` of a chunk adds to the register at the chunk's end,
    ``A^(CHUNK-1-j)(T[b])``."""
    tables = np.empty((CHUNK, 256), np.uint32)
    tables[-1] = _table_array()
    for j in range(CHUNK - 2, -1, -1):
        tables[j] = _zero_byte(tables[j + 1])
    return tables.ravel()


@functools.cache
def _offsets() -> np.ndarray:
    """Where each position's table starts in :func:`_positions` (``256 j``)."""
    return np.arange(CHUNK, dtype=np.intp) * 256


@functools.cache
def _power(bits: int) -> np.ndarray:
    """``A^(2^bits)`` (a register carried over ``2^bits`` zero bytes) as four tables (4 x 256
    uint32): entry ``[i, b]`` is the image of ``b << 8 i``; made by squaring ``A``."""
    if bits == 0:
        images = _zero_byte(np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32)))
    else:
        half = _power(bits - 1)
        images = _carry(half, _images(half))
    tables = np.zeros((4, 256), np.uint32)
    for i in range(4):
        for bit in range(8):
            low = 1 << bit
            tables[i, low:2 * low] = tables[i, :low] ^ images[8 * i + bit]
    tables.flags.writeable = False
    return tables


def _images(tables: np.ndarray) -> np.ndarray:
    """The images of bits 0 .. 31 under the linear map of ``tables``."""
    return tables[np.arange(32) // 8, 1 << (np.arange(32) % 8)]


def _carry(tables: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The linear map of ``tables`` applied to the registers ``v`` (uint32)."""
    return (tables[0].take(v & 0xFF) ^ tables[1].take((v >> 8) & 0xFF)
            ^ tables[2].take((v >> 16) & 0xFF) ^ tables[3].take(v >> 24))


@functools.cache
def _power_lists(bits: int) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(t) for t in _power(bits).tolist())


def _shift(register: int, n: int) -> int:
    """``A^n(register)``: the register carried over ``n`` zero bytes."""
    bits = 0
    while n and register:
        if n & 1:
            t = _power_lists(bits)
            register = t[0][register & 0xFF] ^ t[1][(register >> 8) & 0xFF] ^ t[2][(register >> 16) & 0xFF] ^ t[3][register >> 24]
        n >>= 1
        bits += 1
    return register
