"""Who is in which split: patient ids, the NIH patient split, the Kermany grouped folds."""

import numpy as np
import pandas as pd
import pytest

from cxrsr_utils.core.params import load_params
from cxrsr_utils.data_prep import splits
from cxrsr_utils.data_prep import steps as data


def _nih_cfg(**caps):
    cfg = load_params("quick").nih
    return cfg.model_copy(update={"n_finetune": None, "n_val": None, "n_test": None, **caps})


# Patients with one to four images each, as in ChestX-ray14 (follow-up number after "_").
NAMES = [f"{p:08d}_{k:03d}.png" for p in range(60) for k in range(1 + p % 4)]


def test_nih_split_is_by_patient_and_uses_every_image():
    split = splits.split_nih(NAMES, _nih_cfg(), seed=0)
    assert sorted(split.file.map(str)) == sorted(NAMES)  # every image, exactly once
    assert set(split.split) == {"finetune", "val", "test"}
    assert (split.groupby("patient")["split"].nunique() == 1).all()
    patients = split.groupby("split")["patient"].apply(set)
    assert not patients["val"] & patients["test"]
    assert not (patients["val"] | patients["test"]) & patients["finetune"]
    # the shares are of patients, not images
    assert len(patients["test"]) == round(0.2 * 60) and len(patients["val"]) == round(0.1 * 60)


def test_nih_split_on_the_mirror_names(nih_images):
    split = splits.split_nih(nih_images, _nih_cfg(), seed=3)
    assert sorted(split.file) == sorted(nih_images)
    owners = split.groupby("patient")["split"].nunique()
    assert (owners == 1).all()


def test_nih_caps_keep_the_first_in_the_seeded_order():
    full = splits.split_nih(NAMES, _nih_cfg(), seed=1)
    capped = splits.split_nih(NAMES, _nih_cfg(n_finetune=5, n_val=2, n_test=3), seed=1)
    assert capped.groupby("split").size().to_dict() == {"finetune": 5, "test": 3, "val": 2}
    for name, part in capped.groupby("split"):
        expected = full[full.split == name].sort_values("order").head(len(part))
        assert part.file.tolist() == expected.file.tolist()


def test_nih_split_depends_on_the_seed_and_refuses_too_few_patients():
    a, b = (splits.split_nih(NAMES, _nih_cfg(), seed=s) for s in (0, 1))
    assert set(a[a.split == "test"].patient) != set(b[b.split == "test"].patient)
    with pytest.raises(ValueError, match="val_fraction"):
        splits.split_nih(["00000001_000.png", "00000002_000.png"], _nih_cfg(), seed=0)


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person1028_bacteria_2960.jpeg", "person1028"),
        ("person1035_virus_1729.jpeg", "person1035"),
        ("IM-0133-0001.jpeg", "IM-0133"),
        ("NORMAL2-IM-1102-0001.jpeg", "NORMAL2-IM-1102"),
        ("/data/train/NORMAL/NORMAL2-IM-1102-0002.jpeg", "NORMAL2-IM-1102"),
        # the mirror also numbers some NORMAL images twice
        ("IM-0501-0001-0002.jpeg", "IM-0501"),
        ("NORMAL2-IM-1102-0001-0002.jpeg", "NORMAL2-IM-1102"),
    ],
)
def test_kermany_patient_on_the_three_name_forms(name, patient):
    assert data.kermany_patient(name) == patient


@pytest.mark.parametrize(
    "name", ["scan_01.jpeg", "IM0133.jpeg", "IM-0133.jpeg", "NORMAL3-IM-0001-0001.jpeg"]
)
def test_kermany_patient_refuses_other_names(name):
    with pytest.raises(ValueError, match="not a Kermany file name"):
        data.kermany_patient(name)


def _kermany_table() -> pd.DataFrame:
    rows = [{"file": f"IM-{p:04d}-{k:04d}.jpeg", "label": 0} for p in range(30) for k in range(3)]
    rows += [
        {"file": f"person{p}_bacteria_{p * 10 + k}.jpeg", "label": 1}
        for p in range(40)
        for k in range(1 + p % 2)
    ]
    table = pd.DataFrame(rows)
    table["patient"] = table.file.map(data.kermany_patient)
    return table


def test_kermany_folds_are_grouped_stratified_and_cover_each_image_once():
    table = _kermany_table()
    folds = splits.kermany_folds(table, 5, seed=0)
    assert folds.shape == (len(table),) and set(folds) == set(range(5))  # one fold per image
    table["fold"] = folds
    assert (table.groupby("patient")["fold"].nunique() == 1).all()
    # stratified: every fold holds both classes, in about the overall proportion
    share = table.groupby("fold")["label"].mean()
    assert share.between(table.label.mean() - 0.15, table.label.mean() + 0.15).all()
    assert not np.array_equal(folds, splits.kermany_folds(table, 5, seed=1))
    assert np.array_equal(folds, splits.kermany_folds(table, 5, seed=0))


def test_kermany_folds_need_as_many_patients():
    table = _kermany_table().head(3)
    with pytest.raises(ValueError, match="kermany.folds"):
        splits.kermany_folds(table, 5, seed=0)


def test_patients_per_split_counts_shared_patients():
    table = pd.DataFrame({"patient": ["a", "a", "b", "c"], "split": ["x", "y", "x", "y"]})
    out = splits.patients_per_split(table, "split").set_index("split")
    assert out.loc["x"].tolist() == [2, 2, 1] and out.loc["y"].tolist() == [2, 2, 1]
