"""A small VTK XML writer in numpy: ``.vtp`` polydata, ``.vti`` image data, ``.pvd`` collections.

Arrays go into one ``<AppendedData encoding="raw">`` block, each compressed with zlib in
blocks, with ``header_type="UInt64"`` (the layout VTK's own writers use and every VTK/ParaView
reader since VTK 6 reads). No VTK needed to write: users of the CSV/VTK exports and the live
sinks never install ``vtk``.

Compressed array layout (all little-endian UInt64)::

    [number of blocks, uncompressed block size, uncompressed size of the last block,
     compressed size of block 1, ..., compressed size of block n] then the compressed blocks

Example:
    >>> import numpy as np, tempfile, os
    >>> from convscope.export._scenes import ImageData
    >>> img = ImageData(dimensions=(2, 2, 1), point_data={"v": np.arange(4, dtype=np.float32)})
    >>> path = os.path.join(tempfile.mkdtemp(), "x.vti")
    >>> write_vti(path, img) > 0
    True
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from convscope.errors import DataError
from convscope.export._scenes import IDENTITY, ImageData, PolyData

__all__ = ["write_pvd", "write_vti", "write_vtp", "BLOCK_SIZE"]

#: uncompressed bytes per zlib block (VTK's writers use 32 KiB; bigger blocks write faster)
BLOCK_SIZE = 1 << 20
#: zlib level: 1 is several times faster than 6 and only a little bigger on this data
LEVEL = 1

_TYPES = {
    np.dtype("float32"): "Float32",
    np.dtype("float64"): "Float64",
    np.dtype("int8"): "Int8",
    np.dtype("uint8"): "UInt8",
    np.dtype("int16"): "Int16",
    np.dtype("uint16"): "UInt16",
    np.dtype("int32"): "Int32",
    np.dtype("uint32"): "UInt32",
    np.dtype("int64"): "Int64",
    np.dtype("uint64"): "UInt64",
}


class _Appended:
    """Collects compressed arrays; hands out their offsets into the appended block."""

    def __init__(self, *, level: int) -> None:
        self.parts: list[bytes] = []
        self.offset = 0
        self.level = level

    def add(self, array: np.ndarray) -> int:
        raw = np.ascontiguousarray(array).reshape(-1).data.cast("B")  # (an empty array cannot be cast as it is)
        n = len(raw)
        blocks = [zlib.compress(raw[i : i + BLOCK_SIZE], self.level) for i in range(0, n, BLOCK_SIZE)]
        last = n - (len(blocks) - 1) * BLOCK_SIZE if blocks else 0
        header = struct.pack(f"<{3 + len(blocks)}Q", len(blocks), BLOCK_SIZE, last, *(len(b) for b in blocks))
        start = self.offset
        self.parts.append(header)
        self.parts.extend(blocks)
        self.offset += len(header) + sum(len(b) for b in blocks)
        return start


def _as_vtk_array(name: str, values: np.ndarray) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if a.dtype.newbyteorder("<") not in _TYPES:
        raise DataError(f"array {name!r} has dtype {a.dtype}, which VTK files cannot hold; convert it to a number type")
    return a.astype(a.dtype.newbyteorder("<"), copy=False)


def _data_array(app: _Appended, name: str | None, values: np.ndarray, *, tuples: int | None = None) -> str:
    a = _as_vtk_array(name or "", values)
    comps = 1 if a.ndim <= 1 else int(np.prod(a.shape[1:]))
    attrs = f'type="{_TYPES[a.dtype.newbyteorder("=")]}"'
    if name is not None:
        attrs += f" Name={quoteattr(name)}"
    attrs += f' NumberOfComponents="{comps}"'
    if tuples is not None:
        attrs += f' NumberOfTuples="{tuples}"'
    offset = app.add(a)
    return f'<DataArray {attrs} format="appended" offset="{offset}"/>'


def _attribute_block(app: _Appended, tag: str, arrays: Mapping[str, np.ndarray], count: int, where: str) -> str:
    if not arrays:
        return f"<{tag}/>"
    lines = []
    for name, values in arrays.items():
        a = np.asarray(values)
        if a.shape[:1] != (count,):
            raise DataError(f"{where} array {name!r} has {a.shape[:1]} tuples, expected {count}")
        lines.append(_data_array(app, name, a))
    first = next(iter(arrays))
    return f"<{tag} Scalars={quoteattr(first)}>" + "".join(lines) + f"</{tag}>"


def _field_block(app: _Appended, field: Mapping[str, np.ndarray]) -> str:
    if not field:
        return ""
    lines = [_data_array(app, name, np.atleast_1d(np.asarray(v)), tuples=len(np.atleast_1d(v))) for name, v in field.items()]
    return "<FieldData>" + "".join(lines) + "</FieldData>"


def _finish(path: str | os.PathLike[str], kind: str, body: str, app: _Appended) -> int:
    head = (
        '<?xml version="1.0"?>\n'
        f'<VTKFile type="{kind}" version="1.0" byte_order="LittleEndian" header_type="UInt64" '
        'compressor="vtkZLibDataCompressor">\n'
        f"{body}\n"
        '<AppendedData encoding="raw">\n_'
    ).encode()
    tail = b"\n</AppendedData>\n</VTKFile>\n"
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(head)
        for part in app.parts:
            fh.write(part)
        fh.write(tail)
    os.replace(tmp, target)  # a reader (ParaView watching the folder) never sees half a file
    return len(head) + app.offset + len(tail)


def _cells(app: _Appended, tag: str, cells: tuple[np.ndarray, np.ndarray] | None) -> str:
    if cells is None:
        return f"<{tag}/>"
    connectivity, offsets = cells
    return (
        f"<{tag}>"
        + _data_array(app, "connectivity", np.asarray(connectivity, dtype=np.int64))
        + _data_array(app, "offsets", np.asarray(offsets, dtype=np.int64))
        + f"</{tag}>"
    )


def write_vtp(path: str | os.PathLike[str], poly: PolyData, *, level: int = LEVEL) -> int:
    """Write ``poly`` as a ``.vtp`` file; return its size in bytes."""
    app = _Appended(level=level)
    n_points = len(poly.points)
    counts = {tag: (0 if c is None else len(c[1])) for tag, c in (("Verts", poly.verts), ("Lines", poly.lines), ("Polys", poly.polys))}
    n_cells = sum(counts.values())
    body = [
        "<PolyData>",
        _field_block(app, poly.field_data),
        f'<Piece NumberOfPoints="{n_points}" NumberOfVerts="{counts["Verts"]}" NumberOfLines="{counts["Lines"]}" '
        f'NumberOfStrips="0" NumberOfPolys="{counts["Polys"]}">',
        _attribute_block(app, "PointData", poly.point_data, n_points, "point"),
        _attribute_block(app, "CellData", poly.cell_data, n_cells, "cell"),
        "<Points>" + _data_array(app, "Points", np.asarray(poly.points, dtype=np.float32).reshape(-1, 3)) + "</Points>",
        _cells(app, "Verts", poly.verts),
        _cells(app, "Lines", poly.lines),
        "<Strips/>",
        _cells(app, "Polys", poly.polys),
        "</Piece>",
        "</PolyData>",
    ]
    return _finish(path, "PolyData", "\n".join(b for b in body if b), app)


def write_vti(path: str | os.PathLike[str], image: ImageData, *, level: int = LEVEL) -> int:
    """Write ``image`` as a ``.vti`` file; return its size in bytes.

    Point data arrays are in VTK order: x varies fastest, so a C-ordered numpy array of shape
    ``(nz, ny, nx)`` flattened is exactly right.
    """
    app = _Appended(level=level)
    nx, ny, nz = image.dimensions
    extent = f"0 {nx - 1} 0 {ny - 1} 0 {nz - 1}"
    n_points = nx * ny * nz
    n_cells = max(nx - 1, 1) * max(ny - 1, 1) * max(nz - 1, 1)
    point_data = {k: _tuples(np.asarray(v), n_points, k) for k, v in image.point_data.items()}
    body = [
        f'<ImageData WholeExtent="{extent}" Origin="{_nums(image.origin)}" Spacing="{_nums(image.spacing)}"{_direction(image)}>',
        _field_block(app, image.field_data),
        f'<Piece Extent="{extent}">',
        _attribute_block(app, "PointData", point_data, n_points, "point"),
        _attribute_block(app, "CellData", image.cell_data, n_cells, "cell"),
        "</Piece>",
        "</ImageData>",
    ]
    return _finish(path, "ImageData", "\n".join(b for b in body if b), app)


def _direction(image: ImageData) -> str:
    """The ``Direction`` attribute of an oriented image (VTK 9's readers, ParaView's included,
    place its points by it; older ones ignore it); none for the identity, whose files stay as they were."""
    direction = tuple(float(v) for v in image.direction)
    if len(direction) != 9:
        raise DataError(f"an image's direction is a 3 x 3 matrix of 9 numbers, got {len(direction)}")
    return "" if direction == IDENTITY else f' Direction="{_nums(direction)}"'


def _tuples(a: np.ndarray, n: int, name: str) -> np.ndarray:
    """``a`` as ``n`` tuples (the image's points, x fastest) of one or more components."""
    if a.size == 0 or a.size % n:
        raise DataError(f"image array {name!r} of shape {list(a.shape)} does not fit the image's {n} points")
    return a.reshape(n) if a.size == n else a.reshape(n, -1)


def _nums(values: Sequence[float]) -> str:
    return " ".join(repr(float(v)) for v in values)


def write_pvd(path: str | os.PathLike[str], entries: Sequence[tuple[float, str]]) -> None:
    """Write a ``.pvd`` collection: ``(time, file relative to the .pvd)`` per step.

    ParaView opens it as one source whose time steps are the given times.
    """
    lines = ['<?xml version="1.0"?>', '<VTKFile type="Collection" version="1.0" byte_order="LittleEndian">', "<Collection>"]
    for time, file in entries:
        lines.append(f'<DataSet timestep="{float(time)!r}" group="" part="0" file={quoteattr(str(file))}/>')
    lines += ["</Collection>", "</VTKFile>", ""]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, target)
