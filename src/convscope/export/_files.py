"""Which files in an export's folder are ours to replace when the same run is exported again.

An export into a folder that an earlier export of the same run wrote to replaces what that
earlier export wrote, and nothing else: each writer knows the names it gives its files (a VTK
series' step files, the TensorBoard event files of a run's layer and kind) and removes only
files of those names. Files of other names, of other series or of other runs stay, and so do
links and folders.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container
from pathlib import Path

__all__ = ["LAYER_CHARS", "layer_token", "remove_ours"]

#: the longest layer part of a file name (longer names keep their start and a hash, see
#: :func:`layer_token`): a TensorBoard event file's name, with a run id of 96 characters and the
#: host cut to 24, stays under the 255 bytes file systems allow
LAYER_CHARS = 48

#: the characters a layer keeps in a file name; any other is written as ``%XX``
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def remove_ours(folder: Path, ours: re.Pattern[str], *, keep: Container[str] = ()) -> int:
    """Remove the plain files in ``folder`` whose whole name matches ``ours``, but those in ``keep``.

    Returns how many went. A folder that is not there has nothing to remove.
    """
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        if ours.fullmatch(path.name) and path.name not in keep and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def layer_token(layer: str) -> str:
    """``layer`` as the layer part of an export's event file name: one token per layer.

    Letters, digits, ``_``, ``.`` and ``-`` stay; every other character becomes ``%XX`` of its
    UTF-8 bytes (``%`` too), so no two layers share a token: ``a.b``, ``a_b`` and ``a/b``
    (``a%2Fb``) stay apart, and no token holds ``@`` (which separates the parts of a name) or
    a separator. A token longer than :data:`LAYER_CHARS` keeps its start and ends with ``~``
    and a hash of the whole name (``~`` is in no other token).

    Example:
        >>> [layer_token(name) for name in ("features.0", "a_b", "block/conv 1", "50%")]
        ['features.0', 'a_b', 'block%2Fconv%201', '50%25']
        >>> token = layer_token("backbone." * 8 + "conv1")
        >>> len(token), token[:12], token[-17]
        (48, 'backbone.bac', '~')
    """
    token = "".join(c if c in _KEPT else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass")) for c in layer)
    if len(token) <= LAYER_CHARS:
        return token
    digest = hashlib.sha256(layer.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    head = re.sub(r"%[0-9A-F]?$", "", token[: LAYER_CHARS - len(digest) - 1])  # (no escape cut in two)
    return f"{head}~{digest}"
