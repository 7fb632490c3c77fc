"""Writing files safely: a temporary beside the target, renamed into place.

What is written through :func:`atomic_path` (or :func:`write_text`) is either the whole new
file or the old one: a crash never leaves a half-written file behind, and a killed writer's
leftover (a hidden ``.part`` file) never matches a glob like ``*.png``. A live writer holds an
exclusive lock on its temporary, so a leftover is known to be dead (not merely old) when its
lock can be taken: :func:`remove_stale_parts` removes exactly those, also while another process
writes into the same folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cxrsr_utils.core.errors import CxrsrError

PART = ".part"
# A temporary is only judged once it is this old: the moment between its creation and its
# writer's lock is the only time an unlocked temporary can belong to a live writer.
GRACE_SECONDS = 2.0
# Names longer than this (in bytes) are shortened in the temporary's name, so the temporary
# of a 255-byte name (the file system's limit) is not longer than the limit itself.
_MAX_STEM_BYTES = 160


def _part_stem(name: str) -> str:
    """``name`` as it starts the temporary's name: shortened with a hash when too long."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= _MAX_STEM_BYTES:
        return name
    short = raw[:_MAX_STEM_BYTES].decode("utf-8", "ignore")
    return f"{short}~{hashlib.sha1(raw).hexdigest()[:8]}"


def _is_dead(part: Path) -> bool:
    """True when no live writer holds ``part``'s lock (its writer was killed or never locked)."""
    try:
        fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # locked: a writer is alive
    finally:
        os.close(fd)  # closing releases a lock we took
    return True


def remove_stale_parts(
    folder: Path, pattern: str = "*", age: float = GRACE_SECONDS, *, recursive: bool = False
) -> list[Path]:
    """Delete dead hidden temporaries ``.{pattern}.*.part*`` in ``folder`` (below it too when
    ``recursive``): those no live writer holds and older than ``age`` seconds."""
    removed = []
    now = time.time()
    found = (
        folder.rglob(f".{pattern}.*{PART}*") if recursive else folder.glob(f".{pattern}.*{PART}*")
    )
    for part in found:
        with contextlib.suppress(OSError):
            if part.is_file() and now - part.stat().st_mtime > age and _is_dead(part):
                part.unlink()
                removed.append(part)
    return removed


class WriteError(CxrsrError, OSError):
    """A result could not be written; the message names the target, not the temporary."""


def _write_error(target: Path, exc: OSError) -> WriteError:
    error = WriteError(f"{target}: cannot write here ({exc.strerror or exc}).")
    error.errno = exc.errno  # ENOSPC stays recognisable (a full disk ends the batch)
    return error


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    The temporary is hidden and ends in ``.part`` (``.name.xxxx.part``), so a killed writer's
    leftover never matches a glob like ``*.png``; dead leftovers of this name are removed here.
    ``keep_suffix`` appends the target's suffix after ``.part`` for writers that insist on it
    (Keras). An OS error while creating, writing (a full disk) or renaming raises
    :class:`WriteError` naming ``target``.
    """
    target = Path(target)
    stem = _part_stem(target.name)
    suffix = PART + (target.suffix if keep_suffix else "")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(target.parent, glob_escape(stem))
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=suffix, dir=target.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until the rename: the temporary is alive
    except OSError as exc:
        raise _write_error(target, exc) from exc
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            os.chmod(tmp_path, 0o644)
            os.replace(tmp_path, target)
        except WriteError:
            raise
        except OSError as exc:
            raise _write_error(target, exc) from exc
    finally:
        tmp_path.unlink(missing_ok=True)
        os.close(fd)


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write text atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)
