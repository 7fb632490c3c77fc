"""Notebook 04's orchestration: pairs in both conditions, methods, resumable SR outputs, the
paper's table form, the zoom rows, and what each table and figure says a variant lacks."""

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.core.layout import EVAL_CONDITIONS, StudyLayout
from cxrsr_utils.core.params import load_params
from cxrsr_utils.core.vocabulary import finetuned_method
from cxrsr_utils.evaluation import labels, paper_fig10, zoom
from cxrsr_utils.evaluation import methods as eval_methods
from cxrsr_utils.evaluation import steps as evaluate
from cxrsr_utils.evaluation import summaries as sr_summaries
from cxrsr_utils.finetune.inference_settings import evaluate_infer_options
from cxrsr_utils.finetune.model_card import (
    GeneratorRecord,
    ModelCard,
    TrainingData,
    ValidationRecord,
    chosen_variant,
    recorded_paper_gaps,
)
from cxrsr_utils.finetune.paper_gaps import NOT_RECORDED
from cxrsr_utils.images import radiographs
from cxrsr_utils.reporting import image_figures
from cxrsr_utils.sr import infer
from cxrsr_utils.sr.upscaler import load_model

HR = 64  # HR side of the synthetic pairs (LR 16)


def _chest(rng: np.random.Generator) -> np.ndarray:
    """A smooth gray image with some texture, in [0, 1]."""
    y, x = np.mgrid[0:HR, 0:HR] / HR
    image = 0.5 + 0.3 * np.sin(6 * x + rng.uniform(0, 3)) * np.cos(4 * y) + 0.05 * rng.random()
    return np.clip(image + 0.02 * rng.standard_normal((HR, HR)), 0, 1).astype(np.float32)


def write_study(work, n_nih: int = 3, n_kermany: int = 2) -> pd.DataFrame:
    """Pairs as notebook 01 writes them (the issue-9 data contract) under ``work``, with the
    manifest rows eval_pairs reads: NIH test and val, Kermany cv; both LR roles."""
    layout = StudyLayout(work)
    rng = np.random.default_rng(0)
    rows = []
    images = [("nih", "test", f"{i:08d}_000.png", pd.NA) for i in range(n_nih)]
    images += [("kermany", "cv", f"NORMAL/IM-{i:04d}-0001.png", 0) for i in range(n_kermany)]
    images += [("nih", "val", "99999999_000.png", pd.NA)]  # validation: never evaluated
    for dataset, split, name, label in images:
        hr = _chest(rng)
        lr = radiographs.resize(hr, (HR // 4, HR // 4), method="bicubic")
        degraded = np.clip(lr + 0.05 * rng.standard_normal(lr.shape), 0, 1).astype(np.float32)
        folder = "nih_val" if split == "val" else dataset
        for role, image in (("hr", hr), ("lr", lr), ("lr_degraded", degraded)):
            if split == "val" and role == "lr_degraded":
                continue
            path = layout.pair_folder(folder, role) / name
            radiographs.write_png(path, radiographs.to_pixels(image, 255))
            rows.append(
                {
                    "dataset": dataset,
                    "split": split,
                    "role": role,
                    "path": path.relative_to(layout.data).as_posix(),
                    "label": label,
                }
            )
    return pd.DataFrame(rows).astype({"label": "Int64"})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    manifest = write_study(work)
    return work, evaluate.eval_pairs(manifest, work)


def test_eval_pairs_hold_every_test_image_in_both_conditions(study, tmp_path):
    work, pairs = study
    per_image = pairs.groupby(["dataset", "image"])["condition"].apply(sorted)
    assert all(c == sorted(EVAL_CONDITIONS) for c in per_image)
    assert pairs.groupby("dataset")["image"].nunique().to_dict() == {"kermany": 2, "nih": 3}
    assert not pairs.image.str.startswith("99999999").any()  # the validation pair
    layout = StudyLayout(work)
    for p in pairs.itertuples():
        assert p.lr == layout.pair_folder(p.dataset, EVAL_CONDITIONS[p.condition]) / p.image
        hr, lr = radiographs.read_radiograph(p.hr), radiographs.read_radiograph(p.lr)
        assert hr.pixels.shape == tuple(4 * s for s in lr.pixels.shape)
    assert pairs.query("dataset == 'kermany'").label.notna().all()
    only = evaluate.eval_pairs(write_study(tmp_path, 1, 1), tmp_path, conditions=("degraded",))
    assert set(only.condition) == {"degraded"} and len(only) == 2
    with pytest.raises(ValueError, match="conditions must be among"):
        evaluate.eval_pairs(write_study(tmp_path, 1, 1), tmp_path, conditions=("blurred",))
    with pytest.raises(FileNotFoundError, match="run's folder"):  # the data folder, not the run
        evaluate.eval_pairs(pd.DataFrame(), work / "data")


def test_a_missing_degraded_lr_is_an_error(tmp_path):
    manifest = write_study(tmp_path, 1, 1)
    layout = StudyLayout(tmp_path)
    next(layout.pair_folder("nih", "lr_degraded").glob("*.png")).unlink()
    with pytest.raises(FileNotFoundError, match="1 LR input"):
        evaluate.eval_pairs(manifest, tmp_path)


def test_methods_run_score_and_resume_in_both_conditions(study):
    work, pairs = study
    options = infer.InferOptions(progress=False)
    methods, skipped = eval_methods.available_methods(work, options, include_general_v3=True)
    names = [m.name for m in methods]
    assert names[:3] == ["bicubic", "lanczos", "pretrained"]
    assert any("notebook 03" in s for s in skipped)
    per_image = evaluate.run_methods(pairs, methods, work)
    assert len(per_image) == len(pairs) * len(methods)
    assert list(per_image.columns[:5]) == ["dataset", "condition", "image", "label", "method"]
    assert per_image[["psnr", "ssim", "mse", "lr_psnr"]].notna().all().all()
    counts = per_image.groupby(["dataset", "image", "method"])["condition"].nunique()
    assert (counts == len(EVAL_CONDITIONS)).all()
    # bicubic of a bicubic-downsampled image is closer to HR than of a noisy one
    bic = per_image[per_image.method == "bicubic"].pivot(
        index=["dataset", "image"], columns="condition", values="psnr"
    )
    assert (bic["bicubic"] > bic["degraded"]).all() and (bic["bicubic"] > 20).all()
    # each condition's output sits in its own folder
    pretrained = methods[2]
    first = pairs.iloc[0]
    outputs = {
        c: evaluate.sr_path(work, pretrained, first.dataset, first.image, c)
        for c in EVAL_CONDITIONS
    }
    for condition, target in outputs.items():
        assert target.is_file() and f"/{condition}/{first.dataset}/" in target.as_posix()
        assert pretrained.sha256[:12] in str(target)  # other weights never reuse these outputs
    a, b = (radiographs.read_radiograph(p).pixels for p in outputs.values())
    assert not np.array_equal(a, b)
    # a resumed run reuses the written outputs and scores them identically
    before = outputs["bicubic"].stat().st_mtime_ns
    again = evaluate.run_methods(pairs, methods, work)
    assert outputs["bicubic"].stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(per_image, again)


def test_outputs_are_written_in_chunks_and_only_where_missing(study, tmp_path):
    """Batched SR outputs equal one-at-a-time ones (to a grey level), a chunk of 1 is the
    one-at-a-time path exactly, and a resumed run writes only what is missing."""
    _, pairs = study
    model = load_model("pretrained", infer.InferOptions(progress=False, batch_size=4))
    method = eval_methods.Method("pretrained", "network", model, "test", model.sha256)
    one, batched = tmp_path / "one", tmp_path / "batched"
    assert evaluate.write_missing_outputs(pairs, method, one, chunk=1) == len(pairs)
    assert evaluate.write_missing_outputs(pairs, method, batched) == len(pairs)
    for pair in pairs.itertuples():
        lr = radiographs.read_radiograph(pair.lr).as_float()
        alone = radiographs.to_pixels(method.upscale(lr), 255)
        a, b = (
            radiographs.read_radiograph(
                evaluate.sr_path(w, method, pair.dataset, pair.image, pair.condition)
            ).pixels
            for w in (one, batched)
        )
        np.testing.assert_array_equal(a, alone)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # a resumed run runs the missing output's whole chunk again: the same pixels come back
    last = pairs.iloc[-1]
    target = evaluate.sr_path(batched, method, last.dataset, last.image, last.condition)
    before = target.read_bytes()
    target.unlink()
    assert evaluate.write_missing_outputs(pairs, method, batched) == 1
    assert target.read_bytes() == before
    assert evaluate.write_missing_outputs(pairs, method, batched) == 0


def test_infer_options_follow_the_profile():
    mirror, quick = (evaluate_infer_options(load_params(p)) for p in ("mirror", "quick"))
    assert (mirror.batch_size, mirror.channels_last, mirror.pre_pad) == (4, True, 0)
    assert (quick.batch_size, quick.channels_last, quick.precision) == (1, False, "fp32")
    assert not mirror.progress and mirror.device == "cpu"


def test_finetuned_generators_are_found(tmp_path):
    (tmp_path / "finetune" / "paper").mkdir(parents=True)
    (tmp_path / "finetune" / "paper" / "generator.pth").write_bytes(b"x")
    (tmp_path / "finetune" / "empty").mkdir()
    layout = StudyLayout(tmp_path)
    assert layout.finetuned_generators() == {"paper": layout.generator("paper")}


def test_paper_table_form(study):
    work, pairs = study
    options = infer.InferOptions(progress=False)
    methods, _ = eval_methods.available_methods(work, options, include_general_v3=False)
    evaluate.run_methods(pairs, methods, work)
    table = paper_fig10.paper_table(pairs, work, methods[:1])
    # SR by bicubic *is* the bicubic-upscaled LR: "Between SR & LR" is zero MSE
    mse = table[table.metric == "MSE"]
    assert np.allclose(mse["Between SR & LR"], 0, atol=1e-5)
    assert set(table.columns) >= {"Between Original & LR", "Between SR & LR", "Improvement (%)"}
    psnr = table[table.metric == "PSNR"]
    assert len(psnr) == 2 * len(EVAL_CONDITIONS)
    assert set(psnr.condition) == set(EVAL_CONDITIONS)
    assert set(table.differs_from_paper) == {"not fine-tuned"}


def test_study_methods_use_the_profiles_inference_settings(study, monkeypatch):
    work, _ = study
    seen = {}

    def spy(work_dir, options, *, include_general_v3):
        seen.update(work=work_dir, options=options, general=include_general_v3)
        return [], []

    monkeypatch.setattr(eval_methods, "available_methods", spy)
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


def test_zoom_rows_and_differences_read_the_written_outputs(study):
    work, pairs = study
    options = infer.InferOptions(progress=False)
    baselines = [
        eval_methods.Method(name, "resize", load_model(name, options), source=name)
        for name in ("bicubic", "lanczos")
    ]
    evaluate.run_methods(pairs, baselines, work)
    params = load_params("quick", {"evaluate.zoom_boxes.nih": [0.1, 0.2, 0.5]})
    rows = zoom.zoom_rows(pairs, baselines, work, params)
    assert [(r.dataset, r.condition) for r in rows] == [
        (d, c) for d in ("kermany", "nih") for c in sorted(EVAL_CONDITIONS)
    ]
    row = zoom.zoom_row(rows, "nih", "degraded")
    assert row.box == (0.1, 0.2, 0.5)
    assert zoom.zoom_row(rows, "kermany", "bicubic").box == params.evaluate.zoom_boxes["kermany"]
    first = pairs[(pairs.dataset == "nih") & (pairs.condition == "degraded")].iloc[0]
    assert row.title.endswith(first.image) and labels.CONDITION_LABELS["degraded"] in row.title
    assert labels.DATASET_LABELS["nih"] in row.title
    assert [t for t, _ in row.tiles] == ["LR (nearest)", "bicubic", "lanczos", "HR"]
    hr = radiographs.read_radiograph(first.hr).as_float()
    lr = radiographs.read_radiograph(first.lr).as_float()  # the degraded LR
    np.testing.assert_array_equal(row.tiles[0][1][::4, ::4], lr)
    sr = radiographs.read_radiograph(
        evaluate.sr_path(work, baselines[0], "nih", first.image, "degraded")
    ).as_float()
    np.testing.assert_array_equal(row.tiles[1][1], sr)
    np.testing.assert_array_equal(row.tiles[-1][1], hr)
    diffs = zoom.zoom_differences(row)
    assert [t for t, _ in diffs] == ["bicubic", "lanczos"]
    np.testing.assert_allclose(diffs[0][1], np.abs(sr - hr), atol=1e-6)
    with pytest.raises(KeyError):
        zoom.zoom_row(rows, "nih", "blurred")
    # the figure: the full HR with the box drawn, then each tile cropped to that box
    fig = image_figures.zoom_comparison([row], note="finetuned:x lacks against the paper: y")
    full = fig.axes[0]
    (box,) = full.patches
    assert (box.get_x(), box.get_y(), box.get_width()) == (6, 12, 32)  # 0.1, 0.2, 0.5 of 64
    assert fig.axes[1].images[0].get_array().shape == (32, 32)
    assert any("lacks against the paper" in t.get_text() for t in fig.texts)


def card_json(variant: str, **changes: Any) -> dict[str, Any]:
    """A whole model card of ``variant`` as notebook 03 writes one, with ``changes`` (fields of
    :class:`~cxrsr_utils.finetune.model_card.ModelCard`)."""
    card = ModelCard(
        model=f"quick_{variant}",
        architecture={},
        variant=variant,
        degradation="realesrgan",
        loss="gan",
        perceptual=False,
        paper_gaps=(),
        discriminator=None,
        validation=ValidationRecord("best_val", 5, 30.0, ((5, 30.0), (10, 29.0))),
        options_sha256="o" * 64,
        params_sha256=None,
        data_manifest_sha256=None,
        validation_sha256=None,
        iterations=5,
        total_iter=10,
        batch_size=2,
        gt_size=64,
        world_size=1,
        device="cpu",
        autocast=None,
        ema_decay=0.9,
        seconds_per_iter=None,
        sources={},
        training_data=TrainingData(4, "m" * 64),
        generator=GeneratorRecord("generator.pth", "g" * 64, "params_ema", "EMA", 5),
        resumed_from=None,
        software={},
    )
    return dataclasses.replace(card, **changes).to_json()


def _card(layout: StudyLayout, variant: str, **changes: Any) -> None:
    layout.variant_folder(variant).mkdir(parents=True, exist_ok=True)
    layout.model_card(variant).write_text(json.dumps(card_json(variant, **changes)))


def test_methods_table_says_what_each_variant_lacks(tmp_path):
    layout = StudyLayout(tmp_path)
    _card(layout, "paper", paper_gaps=("no VGG19 perceptual loss", "no netD"))
    # "old": a generator with no model card (its gaps are not recorded)
    _card(layout, "full", paper_gaps=())
    options = infer.InferOptions(progress=False)
    bicubic = eval_methods.Method(
        "bicubic", "resize", load_model("bicubic", options), "radiographs.resize"
    )
    tuned = [
        eval_methods.Method(
            finetuned_method(v),
            "network",
            load_model("bicubic", options),
            "x",
            paper_gaps=recorded_paper_gaps(layout, v),
        )
        for v in ("paper", "old", "full")
    ]
    table = eval_methods.methods_table([bicubic, *tuned], ["realesr-general-x4v3: not offline"])
    assert list(table.columns) == [
        "method",
        "kind",
        "source",
        "sha256",
        "note",
        "differs_from_paper",
    ]
    assert table.differs_from_paper.tolist() == [
        "not fine-tuned",
        "no VGG19 perceptual loss; no netD",
        NOT_RECORDED,
        "nothing (the paper's protocol)",
        "",
    ]
    assert table.iloc[-1].kind == "not evaluated"
    assert table.iloc[-1].note == "realesr-general-x4v3: not offline"
    assert eval_methods.source_record([bicubic]) == {"method:bicubic": bicubic.describe()}
    note = eval_methods.paper_gaps_note([bicubic, *tuned])
    assert note.splitlines() == [
        "finetuned:paper lacks against the paper: no VGG19 perceptual loss; no netD",
        f"finetuned:old lacks against the paper: {NOT_RECORDED}",
        "finetuned:full lacks against the paper: nothing (the paper's protocol)",
    ]


def test_chosen_variant_is_the_best_on_validation(tmp_path):
    layout = StudyLayout(tmp_path)
    for variant, psnr in (("paper", 30.1), ("l1", 31.5), ("matched_l1", 31.5)):
        _card(layout, variant, validation=ValidationRecord("best_val", 5, psnr, ()))
        layout.generator(variant).write_bytes(b"x")
    assert chosen_variant(layout) == "l1"  # a tie goes to the first name
    assert chosen_variant(tmp_path) == "l1"
    _card(layout, "l1", validation=ValidationRecord("last", 10, None, ()))  # not validated
    assert chosen_variant(layout) == "matched_l1"
    with pytest.raises(MissingStepError, match="run notebook 03"):
        chosen_variant(tmp_path / "empty")


def test_dataset_labels_say_what_the_hr_is_and_keep_unknown_names() -> None:
    table = pd.DataFrame(
        {
            "dataset": ["nih", "kermany", "other"],
            "condition": ["bicubic", "degraded", "x"],
            "psnr": [1.0, 2.0, 3.0],
        }
    )
    labelled = labels.with_labels(table)
    assert labelled["dataset"].tolist() == [
        "NIH held-out test (HR: native-pixel centre crop)",
        "Kermany, unseen (HR: whole image resampled)",
        "other",
    ]
    assert labelled["condition"].tolist()[:2] == [
        labels.CONDITION_LABELS["bicubic"],
        labels.CONDITION_LABELS["degraded"],
    ]
    assert labelled["psnr"].tolist() == [1.0, 2.0, 3.0] and table["dataset"][0] == "nih"


def test_datasets_table_names_the_hr_of_each_data_set(study):
    _, pairs = study
    params = load_params("quick")
    table = sr_summaries.datasets_table(pairs, params).set_index("dataset")
    assert table.loc["nih", "images"] == 3 and table.loc["kermany", "images"] == 2
    assert "native pixels" in table.loc["nih", "HR"]
    assert f"resampled to {params.kermany.hr_size}x" in table.loc["kermany", "HR"]
    assert table.loc["nih", "split"] == "test" and table.loc["kermany", "split"] == "cv"
    assert table.loc["nih", "conditions"] == ", ".join(sorted(EVAL_CONDITIONS))
