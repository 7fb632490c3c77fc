"""Fresh results against the committed reference: exact labels, metrics within tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cxrsr_utils.core.project import PROJECT_ROOT
from cxrsr_utils.reporting import reference
from cxrsr_utils.reporting.files import save_table

SUMMARY = pd.DataFrame(
    {
        "dataset": ["nih", "nih", "nih"],
        "condition": ["bicubic", "bicubic", "bicubic"],
        "method": ["bicubic", "bicubic", "bicubic"],
        "metric": ["psnr", "ssim", "mse"],
        "n": [16, 16, 16],
        "mean": [32.59, 0.9022, 0.000675],
        "ci_low": [31.29, 0.8832, 0.000466],
        "ci_high": [33.69, 0.9150, 0.000990],
    }
)
CHECK = reference.CHECKS["04_summary"]


def test_differences_within_tolerance_pass():
    fresh = SUMMARY.copy()
    fresh.loc[0, "mean"] += 0.03  # what an AVX2 CPU moved the fine-tuned PSNR by
    fresh.loc[1, "ci_low"] -= 0.001
    fresh.loc[2, "mean"] *= 1.02
    assert reference.compare_table(fresh, SUMMARY, CHECK) == []


def test_each_metric_is_held_to_its_own_tolerance():
    fresh = SUMMARY.copy()
    fresh.loc[0, "mean"] += 0.15
    fresh.loc[1, "ci_high"] += 0.003
    fresh.loc[2, "ci_low"] *= 1.05
    problems = reference.compare_table(fresh, SUMMARY, CHECK)
    assert len(problems) == 3
    text = " | ".join(problems)
    assert "mean of row 0 (psnr): 32.74 vs reference 32.59 (tolerance ±0.1 dB)" in text
    assert "ci_high of row 1 (ssim)" in text and "(tolerance ±0.002)" in text
    assert "ci_low of row 2 (mse)" in text and "(tolerance ±3%)" in text


def test_labels_and_counts_must_match_exactly():
    fresh = SUMMARY.copy()
    fresh.loc[0, "method"] = "lanczos"
    fresh.loc[1, "n"] = 15
    problems = reference.compare_table(fresh, SUMMARY, CHECK)
    assert any("'nih / bicubic / lanczos / psnr'" in p for p in problems)
    assert any(p.startswith("n of row 1") for p in problems)
    assert reference.compare_table(SUMMARY.iloc[:2], SUMMARY, CHECK) == [
        "2 rows vs 3 in the reference"
    ]


def test_classifier_numbers_are_not_compared_but_its_forms_are():
    ref = pd.DataFrame(
        {
            "form": ["original", "LR (bicubic)"],
            "kind": ["original", "LR"],
            "condition": ["", "bicubic"],
            "method": ["", ""],
            "n": [20, 20],
            "accuracy": [0.95, 0.80],
            "auc": [0.91, 0.95],
        }
    )
    moved = ref.assign(accuracy=[0.95, 0.90], auc=[0.94, 0.95])  # seen on an AVX2 CPU
    check = reference.CHECKS["05_forms_summary"]
    assert reference.compare_table(moved, ref, check) == []
    assert reference.compare_table(moved.assign(n=[20, 19]), ref, check)


def _run(tmp_path: Path, name: str, df: pd.DataFrame) -> Path:
    folder = tmp_path / name / "tables"
    folder.mkdir(parents=True)
    save_table(df, folder, "04_summary")
    return folder


def test_verdict_reads_the_same_on_any_cpu_within_tolerance(tmp_path):
    root = tmp_path / "project"
    ref_tables = reference.reference_dirs("quick", root)["reports"] / "tables"
    ref_tables.mkdir(parents=True)
    save_table(SUMMARY, ref_tables, "04_summary")
    same = _run(tmp_path, "a", SUMMARY)
    near = _run(tmp_path, "b", SUMMARY.assign(mean=SUMMARY["mean"] * [1.001, 1.0005, 1.01]))
    far = _run(tmp_path, "c", SUMMARY.assign(mean=SUMMARY["mean"] + [0.5, 0, 0]))
    v_same = reference.verdict(same, "04_summary", "quick", root)
    assert v_same == reference.verdict(near, "04_summary", "quick", root)
    assert v_same.startswith("04_summary: matches the committed reference")
    v_far = reference.verdict(far, "04_summary", "quick", root)
    assert v_far.startswith("04_summary: differs:") and "33.09 vs reference 32.59" in v_far


def test_compare_run_names_new_and_missing_tables(tmp_path):
    root = tmp_path / "project"
    ref_tables = reference.reference_dirs("quick", root)["reports"] / "tables"
    ref_tables.mkdir(parents=True)
    save_table(SUMMARY, ref_tables, "04_summary")
    save_table(SUMMARY, ref_tables, "04_paired_tests")
    fresh = _run(tmp_path, "run", SUMMARY)
    save_table(SUMMARY, fresh, "99_new")
    table = reference.compare_run(fresh, "quick", root).set_index("table").status.to_dict()
    assert table == {"04_summary": "same", "99_new": "new", "04_paired_tests": "missing"}


def test_publish_makes_the_run_the_reference(tmp_path):
    root = tmp_path / "project"
    run_reports, run_figures = tmp_path / "run" / "reports", tmp_path / "run" / "figures"
    with pytest.raises(FileNotFoundError, match="run the whole study"):
        reference.publish(run_reports, run_figures, "quick", root)
    save_table(SUMMARY, run_reports / "tables", "04_summary")
    (run_reports / "run_manifest.json").write_text("{}")
    (run_reports / "04_sr_evaluation.ipynb").write_text("{}")  # executed copies stay behind
    run_figures.mkdir(parents=True)
    (run_figures / "04_zoom.png").write_bytes(b"png")
    ref = reference.reference_dirs("quick", root)
    (ref["figures"]).mkdir(parents=True)
    (ref["figures"] / "old_figure.png").write_bytes(b"stale")
    reference.publish(run_reports, run_figures, "quick", root)
    assert sorted(p.name for p in ref["figures"].iterdir()) == ["04_zoom.png"]
    assert (ref["reports"] / "tables" / "04_summary.csv").read_bytes() == (
        run_reports / "tables" / "04_summary.csv"
    ).read_bytes()
    assert (ref["reports"] / "run_manifest.json").is_file()
    assert not (ref["reports"] / "04_sr_evaluation.ipynb").exists()


def test_every_committed_table_has_a_declared_comparison():
    tables = sorted((PROJECT_ROOT / "reports" / "quick" / "tables").glob("*.csv"))
    assert tables
    assert [t.stem for t in tables if reference.check_for(t.stem) is None] == []
    assert reference.check_for("03_loss_log_l1").reason  # any variant's loss log


def test_tolerances_cover_the_measured_cpu_differences_twice():
    """The tolerances rest on bench/cpu_portability.py's measurement, with a factor 2 margin."""
    measured = json.loads((PROJECT_ROOT / "reports" / "bench" / "cpu_portability.json").read_text())
    checked = 0
    for row in measured["avx2_differences"]:
        check = reference.check_for(row["table"])
        column, _, metric = row["column"].partition(" [")
        if check is None or (column not in check.numeric and column not in check.metrics):
            continue  # a column compared exactly, or not compared (the check says why)
        metric = metric.rstrip("]") or check.metrics[column]
        tol = reference.TOLERANCES[metric.lower()]
        if tol.relative:
            continue  # relative bounds are checked on the values themselves, not listed here
        assert 2 * row["max_abs_diff"] <= tol.value * check.factor, row
        checked += 1
    assert checked, "the measurement lists no SR metric difference"
