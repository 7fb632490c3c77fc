"""Checkpoints that survive a failed write: atomic, loaded back, pruned after; resume falls back."""

from __future__ import annotations

import errno
import io
import logging
import shutil
from pathlib import Path

import pytest
import torch

from cxrsr_utils.finetune import checkpoints
from cxrsr_utils.finetune import steps as T
from tests.test_train import outputs, tiny_options, train_data  # noqa: F401  (fixture)

TORN_BYTES = 1004  # what basicsr's "Just ignore it" left behind on a full disk


def _torn_save(match: str):
    """A torch.save that, for files whose name starts with ``match``, writes only the first
    1,004 bytes and returns normally (a full disk whose error went unseen)."""
    real = torch.save

    def save(obj, f, *args, **kwargs):
        name = Path(getattr(f, "name", str(f))).name
        if not name.startswith(match):
            return real(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[:TORN_BYTES])
        return None

    return save


def _full_disk(obj, f, *args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["params_ema"]


def test_save_loads_back_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "net_g_10.pth"
    good = {"params": {"w": torch.arange(1000.0)}}
    checkpoints.save(good, target)
    assert torch.equal(checkpoints.load(target)["params"]["w"], good["params"]["w"])
    before = target.read_bytes()

    for fake, reason in (
        (_torn_save(".net_g_10."), "does not load"),
        (_full_disk, "No space left"),
    ):
        monkeypatch.setattr(torch, "save", fake)
        with pytest.raises(checkpoints.CheckpointError, match=reason) as err:
            checkpoints.save({"params": {"w": torch.zeros(1000)}}, target)
        assert str(target) in str(err.value)
        monkeypatch.undo()
        assert target.read_bytes() == before  # the previous file is untouched
        assert [p.name for p in tmp_path.iterdir()] == ["net_g_10.pth"]  # no temporary left


def test_load_names_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "net_g_4.pth"
    buf = io.BytesIO()
    torch.save({"params": {"w": torch.ones(4096)}}, buf)
    path.write_bytes(buf.getvalue()[:TORN_BYTES])
    with pytest.raises(checkpoints.CheckpointError, match="net_g_4.pth does not load"):
        checkpoints.load(path)


def _straight(train_data: Path, tmp_path: Path) -> dict[str, torch.Tensor]:  # noqa: F811
    root = tmp_path / "straight"
    result = T.train(tiny_options(train_data, root / "exp", use_tb_logger=False), **outputs(root))
    return _weights(Path(result.generator_path))


@pytest.mark.slow
def test_torn_newest_checkpoint_falls_back(train_data: Path, tmp_path: Path) -> None:  # noqa: F811
    """A torn net_g_4.pth beside a good checkpoint 2: resume takes 2 and ends like a run that
    was never interrupted."""
    expected = _straight(train_data, tmp_path)
    root = tmp_path / "broken"
    opt = tiny_options(train_data, root / "exp", use_tb_logger=False)
    T.train(opt, **outputs(root), stop_after=2)
    saved = tmp_path / "checkpoint2"
    shutil.copytree(root / "exp", saved)
    T.train(opt, **outputs(root), stop_after=4)  # writes checkpoint 4, prunes 2
    states = root / "exp" / "training_states"
    assert sorted(p.name for p in states.iterdir()) == ["4.state"]
    # Put checkpoint 2 back (as if the pruning had not happened yet) and tear checkpoint 4.
    for sub in ("training_states", "models"):
        for f in (saved / sub).iterdir():
            shutil.copy2(f, root / "exp" / sub / f.name)
    torn = root / "exp" / "models" / "net_g_4.pth"
    torn.write_bytes(torn.read_bytes()[:TORN_BYTES])

    found = checkpoints.newest_loadable(opt, logging.getLogger("test"))
    assert found is not None and found[1]["iter"] == 2
    resumed = T.train(opt, **outputs(root))
    assert (resumed.completed, resumed.resumed_from) == (True, 2)
    got = _weights(Path(resumed.generator_path))
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert "Skipping checkpoint 4" in (root / "exp" / "train.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["torn", "enospc"])
def test_failed_write_keeps_the_previous_checkpoint(
    train_data: Path,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
    monkeypatch,
    failure: str,
) -> None:
    """Disk full while writing net_g_4.pth: training stops with the file named, checkpoint 2
    stays (nothing pruned), no net_g_4.pth appears, and resuming ends like an uninterrupted
    run."""
    expected = _straight(train_data, tmp_path)
    root = tmp_path / "broken"
    opt = tiny_options(train_data, root / "exp", use_tb_logger=False)
    monkeypatch.setattr(
        torch,
        "save",
        _torn_save(".net_g_4.") if failure == "torn" else _guarded(_full_disk, ".net_g_4."),
    )
    with pytest.raises(checkpoints.CheckpointError, match=r"net_g_4\.pth"):
        T.train(opt, **outputs(root))
    monkeypatch.undo()
    models = root / "exp" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["net_d_2.pth", "net_g_2.pth"]
    assert sorted(p.name for p in (root / "exp" / "training_states").iterdir()) == ["2.state"]

    resumed = T.train(opt, **outputs(root))
    assert (resumed.completed, resumed.resumed_from) == (True, 2)
    got = _weights(Path(resumed.generator_path))
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def _guarded(fake, match: str):
    """``fake`` for files whose name starts with ``match``, the real torch.save otherwise."""
    real = torch.save

    def save(obj, f, *args, **kwargs):
        name = Path(getattr(f, "name", str(f))).name
        return (fake if name.startswith(match) else real)(obj, f, *args, **kwargs)

    return save


def test_prune_removes_orphans_and_temporaries(tmp_path: Path) -> None:
    opt = {
        "path": {"training_states": str(tmp_path / "s"), "models": str(tmp_path / "m")},
        "network_d": {},
    }
    for it in (2, 4):
        for f in checkpoints.files(opt, it):
            f.parent.mkdir(exist_ok=True)
            f.write_bytes(b"x")
    (tmp_path / "m" / "net_g_6.pth").write_bytes(b"orphan of a crashed save")
    (tmp_path / "m" / ".net_g_6.abc123.pth").write_bytes(b"temporary of a killed process")
    (tmp_path / "s" / ".6.state.k1ll3d.part").write_bytes(b"temporary, as atomic_path names it")
    (tmp_path / "m" / "notes.txt").write_text("not ours")
    checkpoints.prune(opt, keep=4)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "net_d_4.pth",
        "net_g_4.pth",
        "notes.txt",
    ]
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["4.state"]
    assert checkpoints.iterations(opt) == [4]
