"""Writing files safely: a temporary beside the target, renamed into place.

What is written through :func:`atomic_path` (or :func:`write_text`) is either the whole new
file or the old one: a crash never leaves a half-written file behind, and a killed writer's
leftover (a hidden ``.part`` file) never matches a glob like ``*.png`` and is removed once stale.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PART = ".part"
# A temporary older than this beside its target was left by a killed writer.
STALE_SECONDS = 3600


def remove_stale_parts(folder: Path, pattern: str = "*", age: float = STALE_SECONDS) -> list[Path]:
    """Delete hidden ``.part`` temporaries matching ``.{pattern}.*.part*`` older than ``age`` s."""
    removed = []
    now = time.time()
    for part in folder.glob(f".{pattern}.*{PART}*"):
        with contextlib.suppress(OSError):
            if part.is_file() and now - part.stat().st_mtime > age:
                part.unlink()
                removed.append(part)
    return removed


class WriteError(OSError):
    """A result could not be written; the message names the target, not the temporary."""


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    The temporary is hidden and ends in ``.part`` (``.name.xxxx.part``), so a killed writer's
    leftover never matches a glob like ``*.png``; leftovers older than an hour are removed here.
    ``keep_suffix`` appends the target's suffix after ``.part`` for writers that insist on it
    (Keras). Failing to create or rename raises :class:`WriteError` naming ``target``.
    """
    target = Path(target)
    suffix = PART + (target.suffix if keep_suffix else "")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(target.parent, glob_escape(target.name))
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise WriteError(f"{target}: cannot write here ({exc.strerror or exc}).") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            os.chmod(tmp_path, 0o644)
            os.replace(tmp_path, target)
        except OSError as exc:
            raise WriteError(f"{target}: cannot write here ({exc.strerror or exc}).") from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write text atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)
