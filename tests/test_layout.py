"""The run layout (one home for every hand-off path) and the "already done" stamps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrsr_utils.core import stamps
from cxrsr_utils.core.layout import Paths, StudyLayout, as_layout
from cxrsr_utils.core.params import load_params


def test_paths_is_the_layout_of_a_profiles_run(tmp_path: Path) -> None:
    paths = Paths(load_params("quick"), root=tmp_path)
    assert paths.work == tmp_path / "work" / "quick" and as_layout(paths) is paths
    same = as_layout(paths.work)
    for name in ("reports", "tables", "figures", "data", "data_manifest", "meta_info", "sr"):
        assert getattr(same, name) == getattr(paths, name)
    assert paths.data_manifest == paths.reports / "data_manifest.csv"
    assert paths.meta_info == paths.work / "data" / "nih" / "finetune" / "meta_info.txt"
    assert paths.generator("paper") == paths.work / "finetune" / "paper" / "generator.pth"
    assert paths.model_card("l1").parent == paths.experiment("l1").parent


def test_an_hr_image_and_its_lr_share_a_relative_path(tmp_path: Path) -> None:
    layout = StudyLayout(tmp_path)
    assert layout.pair_folder("nih", "lr") == tmp_path / "data" / "nih" / "test" / "lr"
    assert layout.pair_folder("nih_val", "hr") == tmp_path / "data" / "nih" / "val" / "hr"
    assert layout.pair_folder("kermany", "lr_degraded").name == "lr_degraded"
    with pytest.raises(ValueError, match="known: nih, nih_val, kermany"):
        layout.pair_folder("mimic", "hr")
    with pytest.raises(ValueError, match="hr, lr, lr_degraded"):
        layout.pair_folder("nih", "sr")
    assert layout.sr_output("bicubic", "kermany", "NORMAL/a.jpeg") == (
        tmp_path / "sr" / "bicubic" / "bicubic" / "kermany" / "NORMAL" / "a.png"
    )
    assert layout.sr_output("lanczos", "nih", "b.png", "degraded") == (
        tmp_path / "sr" / "lanczos" / "degraded" / "nih" / "b.png"
    )
    with pytest.raises(ValueError, match="bicubic, degraded"):
        layout.sr_output("lanczos", "nih", "b.png", "blurred")


def test_a_step_is_done_when_its_outputs_exist_and_the_stamp_agrees(tmp_path: Path) -> None:
    record, output = tmp_path / "settings.json", tmp_path / "model.bin"
    settings = {"epochs": 3, "sizes": (1, 2), "where": tmp_path}
    assert stamps.done(record, settings, output) is None  # nothing yet
    stamps.write(record, settings)
    assert stamps.done(record, settings, output) is None  # the output is missing
    output.write_bytes(b"x")
    assert stamps.done(record, settings, output) == json.loads(record.read_text())
    assert stamps.done(record, {"epochs": 3}) is not None  # other keys of the record are free
    assert stamps.done(record, {**settings, "epochs": 4}, output) is None
    record.write_text("{torn")
    assert stamps.done(record, settings, output) is None
