"""Validation during fine-tuning, the checkpoint it chooses, and the discriminator's accuracy."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from cxrsr_utils.core.errors import MissingStepError
from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.finetune import steps as T
from cxrsr_utils.finetune import validation as finetune_validation
from cxrsr_utils.finetune.identity import options_digest
from cxrsr_utils.finetune.logs import discriminator_verdict
from cxrsr_utils.finetune.model import discriminator_accuracy, discriminator_step_outputs
from cxrsr_utils.finetune.model_card import ValidationRecord, chosen_variant
from cxrsr_utils.finetune.paper_gaps import PAPER_GAPS, paper_gaps
from cxrsr_utils.finetune.validation import validation_options
from cxrsr_utils.images.radiographs import read_radiograph
from cxrsr_utils.sr import infer
from cxrsr_utils.stats import image_metrics as metrics
from tests.test_evaluate import card_json
from tests.test_train import outputs, tiny_options, write_training_set, write_val_pairs

# -- the discriminator's accuracy ----------------------------------------------------------


def test_discriminator_accuracy_on_known_logits() -> None:
    real = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]]]])  # 2 of 4 real patches scored real
    fake = torch.tensor([[[[-3.0, -0.1], [-2.0, 4.0]]], [[[1.0, 1.0], [1.0, -1.0]]]])
    acc_real, acc_fake = discriminator_accuracy(real, fake)
    assert acc_real.item() == 0.5  # 2 > 0; 0.0 is not
    assert acc_fake.item() == 4 / 8  # -3, -0.1, -2, -1


def test_discriminator_step_outputs_keeps_the_update_calls_real_then_fake() -> None:
    """As in realesrgan's step: one call with the discriminator frozen (the generator's GAN
    loss), then its real and fake calls with gradients on; only the last two are kept."""
    net_d = torch.nn.Conv2d(1, 1, 1, bias=False)
    torch.nn.init.ones_(net_d.weight)
    with discriminator_step_outputs(net_d) as seen:
        net_d.weight.requires_grad_(False)
        net_d(torch.full((1, 1, 2, 2), 7.0))
        net_d.weight.requires_grad_(True)
        net_d(torch.full((1, 1, 2, 2), 1.0))  # real
        net_d(torch.full((1, 1, 2, 2), -1.0))  # fake
    assert [t.flatten().tolist() for t in seen] == [[1.0] * 4, [-1.0] * 4]
    net_d(torch.zeros(1, 1, 2, 2))
    assert len(seen) == 2  # the hook is gone


def _log(real: list[float], fake: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {"iter": range(1, len(real) + 1), "d_acc_real": real, "d_acc_fake": fake, "l_g_pix": 0.1}
    )


def test_discriminator_verdict_from_the_log() -> None:
    # Says "real" to everything at the end: 1.0 and 0.0 are chance (balanced 0.5).
    chance = discriminator_verdict(_log([0.9, 0.2, 1.0, 1.0], [0.9, 0.9, 0.0, 0.0]), tail=0.5)
    assert chance.at_chance is True and chance.balanced_accuracy == 0.5
    assert (chance.first, chance.last) == (3, 4)
    assert "stayed at chance" in chance.text and "not the paper's GAN protocol" in chance.text
    learned = discriminator_verdict(_log([0.5, 0.5, 0.5, 0.9], [0.5, 0.5, 0.5, 0.7]))
    assert learned.at_chance is False and learned.balanced_accuracy == pytest.approx(0.8)
    assert learned.text.startswith("the discriminator learned")
    # Just above chance but inside the margin is chance.
    assert discriminator_verdict(_log([0.56], [0.5])).at_chance is True
    no_d = discriminator_verdict(pd.DataFrame({"iter": [1], "l_g_pix": [0.1]}))
    assert no_d.at_chance is None and "no discriminator" in no_d.text


# -- what a variant lacks, and the variant chosen ------------------------------------------


def _opt(degradation: str, loss: str, **sources: Any) -> dict[str, Any]:
    src = {"generator": {"source": "RealESRGAN_x4plus", "fp16_rounded": False}}
    src.update(sources)
    return {
        "cxrsr": {"degradation": degradation, "loss": loss, "sources": src},
        "train": {"perceptual_opt": {}} if loss == "gan" else {},
    }


def test_paper_gaps_name_what_each_cell_lacks() -> None:
    netd = {"discriminator": {"source": "RealESRGAN_x4plus_netD"}}
    assert paper_gaps(_opt("realesrgan", "gan", **netd), None) == []
    learned = discriminator_verdict(_log([0.9], [0.9]))
    at_chance = discriminator_verdict(_log([1.0], [0.0]))
    assert paper_gaps(_opt("realesrgan", "gan", **netd), learned) == []
    assert paper_gaps(_opt("realesrgan", "gan", **netd), at_chance) == [PAPER_GAPS["chance"]]
    assert paper_gaps(_opt("bicubic", "gan"), None) == [
        PAPER_GAPS["degradation"],
        PAPER_GAPS["netd"],
    ]
    assert paper_gaps(_opt("realesrgan", "l1"), None) == [PAPER_GAPS["gan"], PAPER_GAPS["vgg19"]]
    ncnn = {"generator": {"source": "RealESRGAN_x4plus_ncnn", "fp16_rounded": True}}
    assert paper_gaps(_opt("bicubic", "l1", **ncnn), None) == [
        PAPER_GAPS["degradation"],
        PAPER_GAPS["gan"],
        PAPER_GAPS["vgg19"],
        PAPER_GAPS["fp16"],
    ]
    assert PAPER_GAPS["generator"] in paper_gaps(_opt("bicubic", "l1", generator=None), None)


def test_chosen_variant_is_the_best_on_validation(tmp_path: Path) -> None:
    layout = StudyLayout(tmp_path)

    def card(variant: str, psnr: float | None) -> None:
        layout.variant_folder(variant).mkdir(parents=True)
        layout.generator(variant).write_bytes(b"")
        validation = ValidationRecord("best_val", 5, psnr, ())
        card = card_json(variant, validation=validation)
        layout.model_card(variant).write_text(json.dumps(card))

    with pytest.raises(MissingStepError, match="validation PSNR"):
        chosen_variant(layout)
    card("paper", 30.0)
    card("matched_l1", 31.5)
    card("l1", 31.5)  # a tie: the first by name wins
    card("matched", None)  # not validated: never chosen
    assert chosen_variant(layout) == "l1"


# -- validation during training (tiny networks) --------------------------------------------


@pytest.fixture(scope="module")
def train_data(tmp_path_factory: pytest.TempPathFactory, nih_images: list[Path]) -> Path:
    return write_training_set(tmp_path_factory.mktemp("nih128"), nih_images[:4])


def _validated(data: Path, root: Path, layout: StudyLayout, **kwargs: Any) -> dict[str, Any]:
    checkpoint = kwargs.pop("checkpoint", "best_val")
    settings = validation_options(
        layout.pair_folder("nih_val", "hr"),
        layout.pair_folder("nih_val", "lr"),
        freq=kwargs.pop("val_freq", 1),
        checkpoint=checkpoint,
    )
    return tiny_options(data, root / "exp", validation=settings, **kwargs)


@pytest.fixture
def scripted_psnr(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[int, Any]]:
    """Validation passes that return scripted PSNRs (10, 12, 11, 9, 8, ...) and record the
    weights they saw, by call."""
    values = [10.0, 12.0, 11.0, 9.0, 8.0, 7.0]
    seen: dict[int, Any] = {}

    def fake(net: torch.nn.Module, pairs: Any, options: Any) -> float:
        seen[len(seen) + 1] = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return values[len(seen) - 1]

    monkeypatch.setattr(finetune_validation, "network_psnr", fake)
    yield seen


@pytest.mark.parametrize("rule", ["best_val", "last"])
def test_exported_generator_is_the_one_the_rule_chooses(
    train_data: Path, tmp_path: Path, scripted_psnr: dict[int, Any], rule: str
) -> None:
    layout = StudyLayout(tmp_path / "run")
    write_val_pairs(layout)
    opt = _validated(train_data, tmp_path, layout, checkpoint=rule)
    result = T.train(opt, **outputs(tmp_path))
    assert result.completed and len(scripted_psnr) == 5  # iterations 1..5, val_freq 1
    exported = torch.load(result.generator_path, weights_only=True)["params_ema"]
    chosen = 2 if rule == "best_val" else 5
    assert all(torch.equal(exported[k], scripted_psnr[chosen][k]) for k in exported)
    assert not all(
        torch.equal(exported[k], scripted_psnr[5 if chosen == 2 else 2][k]) for k in exported
    )
    card = json.loads(Path(result.model_card_path).read_text())
    curve = [[1, 10.0], [2, 12.0], [3, 11.0], [4, 9.0], [5, 8.0]]
    psnr = 12.0 if rule == "best_val" else 8.0
    assert card["validation"] == {
        "chosen_by": rule,
        "chosen_iter": chosen,
        "psnr": psnr,
        "curve": curve,
    }
    assert card["generator"]["iteration"] == chosen
    assert result.validation == card["validation"] and result.iter_seconds > 0
    assert card["validation_sha256"] == finetune_validation.validation_digest(opt)
    # Tiny networks from scratch, no perceptual loss, from-scratch netD, the blind degradation.
    lacks = card["differs_from_paper"]
    assert {PAPER_GAPS["netd"], PAPER_GAPS["vgg19"], PAPER_GAPS["generator"]} <= set(lacks)
    assert PAPER_GAPS["degradation"] not in lacks
    assert (PAPER_GAPS["chance"] in lacks) == card["discriminator"]["at_chance"]
    assert not (tmp_path / "exp" / "best_val").exists()  # removed once exported
    log = finetune_validation.log_table(tmp_path / "exp")
    assert log["iter"].tolist() == [1, 2, 3, 4, 5] and log["val_psnr"].tolist()[1] == 12.0


def test_validation_never_reads_the_test_pairs(
    train_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file opened while the options are built and the run trains and validates: the
    validation pairs are, the NIH test pairs beside them never."""
    layout = StudyLayout(tmp_path / "run")
    write_val_pairs(layout)
    for role in ("hr", "lr", "lr_degraded"):  # test pairs with the same names
        test = layout.pair_folder("nih", role)
        test.mkdir(parents=True)
        for name in ("val0.png", "val1.png"):
            (test / name).write_bytes(
                layout.pair_folder("nih_val", "hr").joinpath(name).read_bytes()
            )
    opened: list[str] = []
    recording = [True]

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if recording[0] and event == "open" and isinstance(args[0], str | Path):
            opened.append(str(Path(args[0]).resolve()))

    sys.addaudithook(audit)  # audit hooks cannot be removed: switched off after the run
    try:
        result = T.train(
            _validated(train_data, tmp_path, layout, total_iter=2), **outputs(tmp_path)
        )
    finally:
        recording[0] = False
    assert result.completed
    test_root = str(layout.data.resolve() / "nih" / "test")
    val_root = str(layout.data.resolve() / "nih" / "val")
    assert not [p for p in opened if p.startswith(test_root)]
    assert {Path(p).name for p in opened if p.startswith(val_root)} == {"val0.png", "val1.png"}


def test_a_validation_point_scores_like_notebook_04(tmp_path: Path) -> None:
    """The PSNR of a pass is the mean over pairs of metrics.psnr on the 8-bit rounded output
    of the inference engine (what notebook 04 writes as PNG and reads back)."""
    layout = StudyLayout(tmp_path)
    names = write_val_pairs(layout, n=2, side=32)
    settings = validation_options(
        layout.pair_folder("nih_val", "hr"),
        layout.pair_folder("nih_val", "lr"),
        freq=1,
        checkpoint="last",
    )
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Upsample(scale_factor=4)
    )
    net.scale = 4  # type: ignore[assignment]
    pairs = finetune_validation.load_pairs(settings)
    got = finetune_validation.network_psnr(
        net, pairs, finetune_validation.validation_infer_options(settings, "cpu")
    )
    expected = []
    for name in names:
        hr = read_radiograph(layout.pair_folder("nih_val", "hr") / name).as_float()
        lr = read_radiograph(layout.pair_folder("nih_val", "lr") / name).as_float()
        sr = infer.upscale_array(lr, net, infer.InferOptions(progress=False), scale=4)
        sr = np.rint(sr * 255).astype(np.uint8).astype(np.float32) / 255
        expected.append(metrics.psnr(sr, hr, data_range=1.0))
    assert got == pytest.approx(float(np.mean(expected)), abs=1e-12)
    refs = finetune_validation.reference_psnr(settings, methods=("bicubic", "lanczos"))
    assert set(refs) == {"bicubic", "lanczos"} and all(np.isfinite(list(refs.values())))


@pytest.mark.slow
def test_resume_keeps_the_validation_curve(train_data: Path, tmp_path: Path) -> None:
    """An interrupted run resumes the curve and the best generator from its checkpoint: the
    same curve, choice and exported weights as an uninterrupted run (real validation passes)."""
    layout = StudyLayout(tmp_path / "run")
    write_val_pairs(layout)
    straight_root, broken_root = tmp_path / "straight", tmp_path / "broken"
    straight = T.train(_validated(train_data, straight_root, layout), **outputs(straight_root))
    opt = _validated(train_data, broken_root, layout)
    stopped = T.train(opt, **outputs(broken_root), stop_after=3)  # checkpoint at 2
    assert not stopped.completed
    assert finetune_validation.log_table(broken_root / "exp")["iter"].tolist() == [1, 2, 3]
    resumed = T.train(opt, **outputs(broken_root))
    assert resumed.resumed_from == 2
    a = finetune_validation.log_table(straight_root / "exp")
    b = finetune_validation.log_table(broken_root / "exp")
    assert a["iter"].tolist() == b["iter"].tolist() == [1, 2, 3, 4, 5]
    assert a["val_psnr"].tolist() == b["val_psnr"].tolist()
    assert straight.validation == resumed.validation
    assert resumed.validation is not None
    assert resumed.validation["curve"] == [
        [i, p] for i, p in zip(a["iter"], a["val_psnr"], strict=True)
    ]
    assert resumed.validation["psnr"] == max(a["val_psnr"])
    ga = torch.load(straight.generator_path, weights_only=True)["params_ema"]
    gb = torch.load(resumed.generator_path, weights_only=True)["params_ema"]
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    assert resumed.options_sha256 == options_digest(opt)
    log = T.loss_log(broken_root / "exp")
    acc = log[["d_acc_real", "d_acc_fake"]].to_numpy()
    assert ((acc >= 0) & (acc <= 1)).all()  # shares of patches, logged every iteration


# -- the figures ---------------------------------------------------------------------------


def test_learning_curve_figure_names_its_axes_and_references() -> None:
    from cxrsr_utils.reporting import training_figures

    curve = pd.DataFrame(
        {"variant": ["paper", "paper", "l1"], "iter": [10, 20, 10], "val_psnr": [30.0, 31.0, 32.0]}
    )
    refs = pd.DataFrame({"method": ["bicubic", "lanczos"], "val_psnr": [29.0, 29.5]})
    ax = training_figures.validation_curves(curve, refs).axes[0]
    assert ax.get_xlabel() == "training iteration" and ax.get_ylabel() == "validation PSNR (dB)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["paper", "l1", "bicubic (29.00 dB)", "Lanczos (29.50 dB)"]
    assert list(ax.lines[0].get_xdata()) == [10, 20]

    logs = {
        "paper": _log([0.9, 1.0], [0.1, 0.0]),
        "l1": pd.DataFrame({"iter": [1], "l_g_pix": [1]}),
    }
    fig = training_figures.discriminator_accuracy(logs)
    assert [a.get_title() for a in fig.axes] == ["paper"]  # only the variant with a D
    assert fig.axes[0].get_ylabel() == "share of patches classified correctly"


def test_validation_settings_list_hash_and_cap_the_pairs(tmp_path: Path) -> None:
    layout = StudyLayout(tmp_path)
    write_val_pairs(layout, n=3)
    hr, lr = layout.pair_folder("nih_val", "hr"), layout.pair_folder("nih_val", "lr")
    full = validation_options(hr, lr, freq=5, checkpoint="best_val")
    assert full["images"] == ["val0.png", "val1.png", "val2.png"]
    two = validation_options(hr, lr, freq=5, checkpoint="best_val", max_images=2)
    assert two["images"] == ["val0.png", "val1.png"]
    assert two["pairs_sha256"] != full["pairs_sha256"]
    digest = finetune_validation.validation_digest
    assert digest({"cxrsr": {"validation": full}}) != digest({"cxrsr": {"validation": two}})
    assert digest({"cxrsr": {}}) is None
    moved = {**full, "hr": "/elsewhere/hr", "lr": "/elsewhere/lr"}
    assert digest({"cxrsr": {"validation": moved}}) == digest({"cxrsr": {"validation": full}})
    (lr / "val2.png").unlink()
    with pytest.raises(FileNotFoundError, match="lack their LR"):
        validation_options(hr, lr, freq=5, checkpoint="best_val")
    with pytest.raises(ValueError, match="checkpoint"):
        validation_options(hr, lr, freq=5, checkpoint="best", max_images=2)
    with pytest.raises(FileNotFoundError, match="notebook 01"):
        validation_options(tmp_path / "none", lr, freq=5, checkpoint="last")
