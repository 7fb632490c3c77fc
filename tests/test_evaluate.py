"""Notebook 04's orchestration: pairs, methods, resumable SR outputs, the paper's table form."""

import numpy as np
import pandas as pd
import pytest

from cxrsr_utils import data, evaluate, infer, metrics, radiographs, stats
from cxrsr_utils.layout import StudyLayout
from cxrsr_utils.params import load_params
from cxrsr_utils.upscaler import load_model

from .test_data import TINY


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, mirror):
    work = tmp_path_factory.mktemp("work")
    tables = data.prepare_all(load_params("quick", TINY), work)
    return work, evaluate.eval_pairs(tables["manifest"], work)


def test_eval_pairs_are_held_out_and_match(prepared):
    work, pairs = prepared
    assert set(pairs.dataset) == {"nih", "kermany"}
    # every Kermany image (cross-validation) and the NIH test pairs, never validation
    assert (pairs.groupby("dataset").size() == pd.Series({"kermany": 8, "nih": 3})).all()
    for p in pairs.itertuples():
        hr, lr = radiographs.read_radiograph(p.hr), radiographs.read_radiograph(p.lr)
        assert hr.pixels.shape == tuple(4 * s for s in lr.pixels.shape)
    assert pairs.query("dataset == 'kermany'").label.notna().all()
    with pytest.raises(FileNotFoundError, match="run's folder"):  # the data folder, not the run
        evaluate.eval_pairs(pd.DataFrame(), work / "data")


def test_methods_run_score_and_resume(prepared):
    work, pairs = prepared
    options = infer.InferOptions(progress=False)
    methods, skipped = evaluate.available_methods(work, options, include_general_v3=True)
    names = [m.name for m in methods]
    assert names[:3] == ["bicubic", "lanczos", "pretrained"]
    assert any("notebook 03" in s for s in skipped)
    per_image = evaluate.run_methods(pairs, methods, work)
    assert len(per_image) == len(pairs) * len(methods)
    assert per_image[["psnr", "ssim", "mse", "lr_psnr"]].notna().all().all()
    # bicubic of a bicubic-downsampled image is much closer to HR than nothing at all
    bic = per_image[per_image.method == "bicubic"]
    assert (bic.psnr > 20).all()
    # a resumed run reuses the written outputs and scores them identically
    pretrained = methods[2]
    target = evaluate.sr_path(work, pretrained, pairs.dataset[0], pairs.image[0])
    assert pretrained.sha256[:12] in str(target)  # other weights never reuse these outputs
    before = target.stat().st_mtime_ns
    again = evaluate.run_methods(pairs, methods, work)
    assert target.stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(per_image, again)


def test_finetuned_generators_are_found(tmp_path):
    (tmp_path / "finetune" / "paper").mkdir(parents=True)
    (tmp_path / "finetune" / "paper" / "generator.pth").write_bytes(b"x")
    (tmp_path / "finetune" / "empty").mkdir()
    layout = StudyLayout(tmp_path)
    assert layout.finetuned_generators() == {"paper": layout.generator("paper")}


def test_paper_table_form(prepared):
    work, pairs = prepared
    options = infer.InferOptions(progress=False)
    methods, _ = evaluate.available_methods(work, options, include_general_v3=False)
    evaluate.run_methods(pairs, methods, work)
    table = evaluate.paper_table(pairs, work, methods[:1])
    psnr = table[table.metric == "PSNR"]
    # SR by bicubic *is* the bicubic-upscaled LR: "Between SR & LR" is infinite PSNR / zero MSE
    mse = table[table.metric == "MSE"]
    assert np.allclose(mse["Between SR & LR"], 0, atol=1e-5)
    assert set(table.columns) >= {"Between Original & LR", "Between SR & LR", "Improvement (%)"}
    assert len(psnr) == 2


def test_wide_summary_and_headline():
    rows = []
    for method, base in (("bicubic", 30.0), ("pretrained", 28.0), ("finetuned:l1", 31.0)):
        for i in range(5):
            rows.append(
                {
                    "dataset": "nih",
                    "image": str(i),
                    "method": method,
                    "psnr": base + 0.1 * i,
                    "ssim": 0.9,
                }
            )
    summary = metrics.summary_table(pd.DataFrame(rows), n_resamples=200)
    wide = evaluate.wide_summary(summary)
    assert list(wide.method) == ["bicubic", "pretrained", "finetuned:l1"]
    assert wide.loc[0, "PSNR (dB)"].startswith("30.20 [")
    text = evaluate.headline(summary)
    assert "bicubic 30.20 dB" in text and "best fine-tuned (l1) 31.20 dB" in text


def test_study_methods_use_the_profiles_inference_settings(prepared, monkeypatch):
    work, _ = prepared
    seen = {}

    def spy(work_dir, options, *, include_general_v3):
        seen.update(work=work_dir, options=options, general=include_general_v3)
        return [], []

    monkeypatch.setattr(evaluate, "available_methods", spy)
    params = load_params(
        "quick",
        {"evaluate.tile": 32, "evaluate.precision": "bf16", "evaluate.include_general_v3": False},
    )
    assert evaluate.study_methods(params, work) == ([], [])
    o = seen["options"]
    assert seen["work"] == work and seen["general"] is False
    assert (o.tile, o.tile_pad, o.pre_pad, o.batch_size, o.precision, o.device, o.progress) == (
        32,
        params.evaluate.tile_pad,
        params.evaluate.pre_pad,
        params.evaluate.batch_size,
        "bf16",
        "cpu",
        False,
    )


def _long_scores(methods: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for k, method in enumerate(methods):
        for dataset in ("kermany", "nih"):
            for i in range(8):
                rows.append(
                    {
                        "dataset": dataset,
                        "image": f"{i}.png",
                        "method": method,
                        "psnr": 30 + k + rng.normal(),
                        "ssim": 0.8 + 0.01 * k + 0.01 * rng.normal(),
                        "mse": 0.001 * rng.random(),
                        "lr_psnr": 40 - k + rng.normal(),
                    }
                )
    return pd.DataFrame(rows)


def test_paired_tests_compare_each_tuned_variant_with_both_baselines():
    params = load_params("quick", {"evaluate.n_bootstrap": 200, "seed": 5})
    methods = ["bicubic", "lanczos", "pretrained", "finetuned:paper", "finetuned:l1"]
    per_image = _long_scores(methods)
    paired = evaluate.paired_tests(per_image, params)
    # Variants in the order they were run, each against pretrained then bicubic.
    pairs = list(dict.fromkeys(zip(paired.method_a, paired.method_b, strict=True)))
    assert pairs == [
        ("finetuned:paper", "pretrained"),
        ("finetuned:paper", "bicubic"),
        ("finetuned:l1", "pretrained"),
        ("finetuned:l1", "bicubic"),
    ]
    assert len(paired) == 4 * 2 * 3 and set(paired.metric) == {"psnr", "ssim", "lr_psnr"}
    direct = metrics.compare_methods(
        per_image,
        "finetuned:l1",
        "bicubic",
        metrics=["psnr", "ssim", "lr_psnr"],
        n_resamples=200,
        seed=5,
    )
    expected = stats.round_table(direct, metrics.DIGITS)
    got = paired[(paired.method_a == "finetuned:l1") & (paired.method_b == "bicubic")]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)
    with pytest.raises(RuntimeError, match="run notebook 03"):
        evaluate.paired_tests(per_image[~per_image.method.str.startswith("finetuned:")], params)


def test_zoom_rows_and_differences_read_the_written_outputs(prepared):
    work, pairs = prepared
    options = infer.InferOptions(progress=False)
    baselines = [
        evaluate.Method(name, "resize", load_model(name, options), source=name)
        for name in ("bicubic", "lanczos")
    ]
    evaluate.run_methods(pairs, baselines, work)
    rows = evaluate.zoom_rows(pairs, baselines, work, 4)
    assert [title.split("\n")[0] for title, _ in rows] == [
        evaluate.DATASET_LABELS["kermany"],
        evaluate.DATASET_LABELS["nih"],
    ]
    title, tiles = rows[1]
    first = pairs[pairs.dataset == "nih"].iloc[0]
    assert title.endswith(first.image)
    assert [t for t, _ in tiles] == ["LR (nearest)", "bicubic", "lanczos", "HR"]
    hr = radiographs.read_radiograph(first.hr).as_float()
    lr = radiographs.read_radiograph(first.lr).as_float()
    np.testing.assert_array_equal(tiles[0][1][::4, ::4], lr)
    assert tiles[0][1].shape == hr.shape
    sr = radiographs.read_radiograph(
        evaluate.sr_path(work, baselines[0], "nih", first.image)
    ).as_float()
    np.testing.assert_array_equal(tiles[1][1], sr)
    np.testing.assert_array_equal(tiles[-1][1], hr)
    diffs = evaluate.zoom_differences(rows[1])
    assert [t for t, _ in diffs] == ["bicubic", "lanczos"]
    np.testing.assert_allclose(diffs[0][1], np.abs(sr - hr), atol=1e-6)


def test_methods_table_and_source_record_list_every_method():
    options = infer.InferOptions(progress=False)
    bicubic = evaluate.Method(
        "bicubic", "resize", load_model("bicubic", options), "radiographs.resize"
    )
    table = evaluate.methods_table([bicubic], ["realesr-general-x4v3: not offline"])
    assert list(table.columns) == ["method", "kind", "source", "sha256", "note"]
    assert table.method.tolist() == ["bicubic", ""]
    assert table.iloc[1].kind == "not evaluated"
    assert table.iloc[1].note == "realesr-general-x4v3: not offline"
    assert evaluate.source_record([bicubic]) == {"method:bicubic": bicubic.describe()}


def test_dataset_labels_name_known_sets_and_keep_unknown_names() -> None:
    table = pd.DataFrame({"dataset": ["nih", "kermany", "other"], "psnr": [1.0, 2.0, 3.0]})
    labelled = evaluate.with_dataset_labels(table)
    assert labelled["dataset"].tolist() == [
        "NIH held-out (same dataset)",
        "Kermany test (unseen)",
        "other",
    ]
    assert labelled["psnr"].tolist() == [1.0, 2.0, 3.0] and table["dataset"][0] == "nih"
