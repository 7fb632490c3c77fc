"""Who is in which split: patient ids, the NIH patient split and the Kermany grouped folds.

Every split of the study is by patient, never by image, so that no patient's radiographs are
on both sides of a comparison:

* NIH ChestX-ray14: a seeded shuffle of the patients into held-out test, validation and
  fine-tune shares (:func:`split_nih`); the patient id is the file name's part before ``_``.
* Kermany pneumonia: patient-grouped, class-stratified K folds (:func:`kermany_folds`,
  scikit-learn's ``StratifiedGroupKFold``); the patient id comes from the file name
  (:func:`kermany_patient`).

Only file names go in, so a split depends on the seed and the names, not on pixels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from cxrsr_utils.core.params_data import NIHParams
from cxrsr_utils.core.repro import rng

# Kermany file names: PNEUMONIA "person1028_bacteria_2960.jpeg" (patient person1028), NORMAL
# "IM-0133-0001.jpeg" (IM-0133) and "NORMAL2-IM-1102-0001.jpeg" (NORMAL2-IM-1102); some NORMAL
# names number the image twice ("NORMAL2-IM-1102-0001-0002.jpeg", same patient).
_KERMANY_PATIENT = re.compile(r"^(person\d+)_|^((?:NORMAL2-)?IM-\d+)(?:-\d+)+\.")


def nih_patient(path: str | Path) -> str:
    """NIH patient id: the part of the file name before the first underscore."""
    return Path(path).name.split("_")[0]


def kermany_patient(path: str | Path) -> str:
    """Kermany patient id from a file name: ``person1028`` (``person1028_bacteria_2960.jpeg``),
    ``IM-0133`` (``IM-0133-0001.jpeg``), ``NORMAL2-IM-1102`` (``NORMAL2-IM-1102-0001.jpeg``,
    ``NORMAL2-IM-1102-0001-0002.jpeg``).

    Raises ``ValueError`` for a name of another form: grouping by image instead would put one
    patient's radiographs in two folds.
    """
    name = Path(path).name
    match = _KERMANY_PATIENT.match(name)
    if match is None:
        raise ValueError(
            f"{name}: not a Kermany file name (personN_..., IM-N-N... or NORMAL2-IM-N-N...); "
            "the patient id is taken from it, so the folds can keep a patient's images together."
        )
    return match.group(1) or match.group(2)


def _share(fraction: float, n: int) -> int:
    return max(1, round(fraction * n))


def split_nih(files: Iterable[str | Path], cfg: NIHParams, seed: int) -> pd.DataFrame:
    """Patient-level split of the NIH files into ``test``, ``val`` and ``finetune``.

    The sorted patients are shuffled (seeded); the first ``test_fraction`` of them (at least
    one) are held out for testing, the next ``val_fraction`` (at least one) validate, the rest
    fine-tune. Within each split the images are put in a seeded order and the caps
    (``n_test``, ``n_val``, ``n_finetune``; None keeps all) keep the first ones.

    Returns one row per kept file: file (as given, a Path), patient, split, order (the seeded
    position), sorted by split and order.
    """
    table = pd.DataFrame({"file": [Path(f) for f in files]})
    if table.empty:
        raise ValueError("No NIH images to split.")
    table["patient"] = table["file"].map(nih_patient)
    patients = np.array(sorted(table["patient"].unique()))
    n_test = _share(cfg.test_fraction, len(patients))
    n_val = _share(cfg.val_fraction, len(patients))
    if n_test + n_val >= len(patients):
        raise ValueError(
            f"{len(patients)} NIH patients cannot make test ({n_test}), validation ({n_val}) "
            "and fine-tune splits; lower nih.test_fraction / nih.val_fraction or add images."
        )
    shuffled = patients[rng(seed, "nih-split").permutation(len(patients))]
    split_of = {p: "test" for p in shuffled[:n_test]}
    split_of |= {p: "val" for p in shuffled[n_test : n_test + n_val]}
    table["split"] = table["patient"].map(lambda p: split_of.get(p, "finetune"))
    table["order"] = rng(seed, "nih-order").permutation(len(table))
    table = table.sort_values("order", kind="stable")
    caps = {"finetune": cfg.n_finetune, "val": cfg.n_val, "test": cfg.n_test}
    kept = [
        part.head(caps[name]) if caps[name] is not None else part
        for name, part in table.groupby("split", sort=True)
    ]
    return pd.concat(kept).sort_values(["split", "order"]).reset_index(drop=True)


def kermany_folds(table: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Cross-validation fold (0..folds-1) of each row of ``table`` (columns label, patient).

    Patient-grouped (a patient's images are all in one fold) and stratified by label, with
    scikit-learn's ``StratifiedGroupKFold`` shuffled by ``seed``. Raises ``ValueError`` when
    there are fewer patients than folds.
    """
    n_patients = table["patient"].nunique()
    if n_patients < folds:
        raise ValueError(
            f"{n_patients} Kermany patients cannot fill {folds} folds; lower kermany.folds or "
            "raise kermany.n_per_class."
        )
    out = np.full(len(table), -1, dtype=np.int64)
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held) in enumerate(cv.split(table, table["label"], groups=table["patient"])):
        out[held] = fold
    return out


def patients_per_split(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """Images and patients per value of ``split`` (a column of ``table``), and how many of
    those patients also appear under another value (0 for a patient-level split)."""
    owners = table.groupby("patient")[split].nunique()
    shared = set(owners[owners > 1].index)
    rows = [
        {
            split: name,
            "images": len(part),
            "patients": part["patient"].nunique(),
            "patients_in_another": len(set(part["patient"]) & shared),
        }
        for name, part in table.groupby(split, sort=True)
    ]
    return pd.DataFrame(rows)
