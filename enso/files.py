"""Files replaced atomically: a reader sees the old file or the new one, never half of one.

:func:`atomic_write` is the one way the system writes a file others may read while
it is written: downloads (:mod:`enso.sources.http`), training checkpoints
(:mod:`enso.model.train`), reports (:mod:`db.reporting`) and the loopback mirror's
files (:mod:`enso.mirror`).
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[Path], None], *, only_if_changed: bool = False,
                 durable: bool = True) -> bool:
    """Write ``path`` through ``write(tmp)``, then move it in place; True if ``path`` was replaced.

    ``tmp`` has the destination's name, in a private folder beside it (the same
    file system, so ``os.replace`` is atomic; writers may record their file name
    inside the file). With ``durable`` (the default) the file, and then the folder's
    entry, are flushed to disk (fsync), so a crash cannot leave an empty file under
    the new name. With ``only_if_changed`` a file of the same content already at
    ``path`` is kept (False). Whatever fails, ``path`` is untouched and no
    temporary file is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    tmp = folder / path.name
    try:
        write(tmp)
        if only_if_changed and path.is_file() and filecmp.cmp(tmp, path, shallow=False):
            return False
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
        return True
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fsync(path: Path) -> None:
    """Flush a file or a folder (its entries) to disk; folders that cannot be opened (not POSIX) are skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
