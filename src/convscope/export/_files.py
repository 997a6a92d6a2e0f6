"""Which files in an export's folder are ours to replace when the same run is exported again.

An export into a folder that an earlier export of the same run wrote to replaces what that
earlier export wrote, and nothing else: each writer knows the names it gives its files (a VTK
series' step files, the TensorBoard event files of a run's layer and kind) and removes only
files of those names. Files of other names, of other series or of other runs stay, and so do
links and folders.
"""

from __future__ import annotations

import re
from collections.abc import Container
from pathlib import Path

__all__ = ["remove_ours"]


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
