"""Writing files so that a killed process never leaves a torn one behind.

Everything pave writes that a later run reads back (feature-store items and index, patches,
predictions' provenance, metrics, recipes, cached visual tokens) is written to a temporary file
in the same folder and renamed over the target, so a reader sees the old file or the new one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

#: Name prefix of the temporary files; :func:`remove_stale` deletes those a killed writer left.
TMP_PREFIX = ".tmp-"


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """``write(tmp_path)``, then fsync and rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def remove_stale(*folders: Path) -> int:
    """Delete the temporary files a killed writer left in ``folders``; call only when no other
    writer runs. Returns how many there were."""
    stale = [p for folder in folders if folder.is_dir() for p in folder.glob(f"{TMP_PREFIX}*")]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


class NotUTF8Error(ValueError):
    """A text file pave reads (annotations, predictions, recipes, configs) is not UTF-8."""

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


def read_utf8(path: str | Path) -> str:
    """A text file's content, decoded as UTF-8 (a leading byte-order mark is dropped, as editors on
    Windows write one). Raises :class:`NotUTF8Error` naming the file and the first bad byte."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotUTF8Error(
            path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
