"""Atomic writes: a failed or killed writer leaves the old file and no visible leftover, and
errors name the target."""

import numpy as np
import pytest

from cxrsr_utils.core import atomic
from cxrsr_utils.images import radiographs


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "keep.txt"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_killed_writer_leaves_no_png_a_glob_finds_and_stale_parts_are_removed(tmp_path):
    import os
    import time

    with pytest.raises(KeyboardInterrupt), atomic.atomic_path(tmp_path / "a.png") as tmp:
        tmp.write_bytes(b"half")
        assert tmp.name.startswith(".a.png.") and tmp.name.endswith(".part")
        raise KeyboardInterrupt
    stale = tmp_path / ".a.png.dead1234.part"  # what a SIGKILL would leave
    stale.write_bytes(b"half")
    assert list(tmp_path.glob("*.png")) == []
    old = time.time() - 2 * atomic.GRACE_SECONDS
    os.utime(stale, (old, old))
    radiographs.write_png(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_write_error_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(atomic.WriteError) as err:
        radiographs.write_png(tmp_path / "out.png", np.zeros((2, 2), np.uint8))
    assert str(tmp_path / "out.png") in str(err.value) and ".part" not in str(err.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(atomic.WriteError, match=r"file/sub/o\.png: cannot write here"):
        atomic.write_text(blocker / "sub" / "o.png", "x")
