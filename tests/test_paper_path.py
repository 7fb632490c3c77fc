"""The paper profile's fine-tuning path, run on CPU with stand-in discriminator and VGG19.

RealESRGAN_x4plus_netD.pth and vgg19-dcbbabf1.pth have no offline source, so the quick profile
replaces them; this test puts random-weight stand-ins with their exact architectures and file
names into a temporary mirror (made here, never committed, never used for results) and runs
the paper profile's own options (``train.profile_options``) with everything the paper uses:
pretrained generator and discriminator, VGG19 perceptual loss with the paper's layer
weights, GAN loss, EMA 0.999, batch > 1, USM-sharpened HR, resume and export. Only the sizes
are shrunk (gt_size 64, batch 2, 4 iterations) so that it runs on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cxrsr_utils.sr import upstream as sr_backend  # noqa: F401  (the basicsr import shim, before basicsr)

# isort: split

from basicsr.archs import vgg_arch
from basicsr.models import build_model

from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.core.params import load_params
from cxrsr_utils.external import sources
from cxrsr_utils.finetune import steps as T
from cxrsr_utils.finetune.logs import GAN_LOG_KEYS
from cxrsr_utils.finetune.option_sections import PERCEPTUAL_LAYERS
from cxrsr_utils.finetune.paper_gaps import PAPER_GAPS
from cxrsr_utils.sr.networks import (
    X4PLUS_DISCRIMINATOR,
    X4PLUS_GENERATOR,
    load_generator_file,
    pretrained_generator_state,
    write_standin_weights,
)
from tests.test_train import write_training_set, write_val_pairs

pytestmark = pytest.mark.slow

SHRUNK = {
    "device": "cpu",
    "finetune.epochs": None,
    "finetune.total_iter": 4,
    "finetune.batch_size": 2,
    "finetune.gt_size": 64,
    "finetune.queue_size": 4,
    "finetune.num_workers": 0,
    "finetune.save_checkpoint_freq": 2,
    "finetune.print_freq": 1,
    "finetune.variants": ["paper"],
    "finetune.val_freq": 2,
    "evaluate.precision": "fp32",  # the paper profile's fp16 is for GPUs; validation runs on CPU
}


@pytest.fixture(scope="module")
def paper_env(
    tmp_path_factory: pytest.TempPathFactory, mirror: Path, nih_images: list[Path]
) -> dict[str, Any]:
    """A temporary mirror (stand-in weights + the real mirror's data), an empty cache, and
    notebook 01's fine-tune layout with six real NIH radiographs at 128 x 128."""
    tmp = tmp_path_factory.mktemp("paper")
    fake_mirror = tmp / "mirror"
    standins = write_standin_weights(fake_mirror, seed=0)
    (fake_mirror / "data").symlink_to(mirror / "data")
    work = tmp / "work"
    write_training_set(StudyLayout(work).nih_finetune, nih_images[:6])
    write_val_pairs(StudyLayout(work))
    return {"mirror": fake_mirror, "cache": tmp / "cache", "work": work, "standins": standins}


@pytest.fixture
def stand_in_sources(paper_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXRSR_MIRROR", str(paper_env["mirror"]))
    monkeypatch.setenv("CXRSR_CACHE", str(paper_env["cache"]))
    monkeypatch.delenv(sources.ENV_ALLOW_UNVERIFIED, raising=False)


def _options(env: dict[str, Any], **more: Any) -> dict[str, Any]:
    params = load_params("paper", {**SHRUNK, **more})
    return T.profile_options(params, env["work"], "paper")


def test_the_study_refuses_the_stand_ins(paper_env, stand_in_sources) -> None:
    """Without the test switch, the registry rejects the VGG19 stand-in by its hash."""
    with pytest.raises(sources.SourceError, match=r"vgg19-dcbbabf1\.pth does not match.*dcbbabf1"):
        _options(paper_env)


def test_paper_options_take_every_paper_part(paper_env, stand_in_sources) -> None:
    with sources.allow_unverified_for_tests():
        opt = _options(paper_env)
        model = build_model(opt)
    t, src = opt["train"], opt["cxrsr"]["sources"]
    assert opt["network_g"] == X4PLUS_GENERATOR and opt["network_d"] == X4PLUS_DISCRIMINATOR
    assert t["perceptual_opt"]["layer_weights"] == PERCEPTUAL_LAYERS
    assert t["perceptual_opt"]["perceptual_weight"] == 1.0 and t["gan_opt"]["loss_weight"] == 0.1
    assert t["ema_decay"] == 0.999 and t["net_d_init_iters"] == 0
    assert (opt["l1_gt_usm"], opt["percep_gt_usm"], opt["gan_gt_usm"]) == (True, True, False)
    assert opt["cxrsr"]["degradation"] == "realesrgan" and opt["cxrsr"]["batch_size"] == 2
    assert src["vgg19"]["note"].startswith("UNVERIFIED: sha256 ")
    assert src["discriminator"]["sha256"] == sources.sha256_file(
        paper_env["standins"]["RealESRGAN_x4plus_netD"]
    )
    # The model really starts from the stand-in files.
    netd = torch.load(paper_env["standins"]["RealESRGAN_x4plus_netD"], weights_only=True)
    for k, v in netd["params"].items():
        assert torch.equal(model.net_d.state_dict()[k], v), k
    vgg = torch.load(paper_env["standins"]["vgg19"], weights_only=True)
    used = model.cri_perceptual.vgg.vgg_net.state_dict()
    assert len(used) == 32  # conv1_1 .. conv5_4: weight and bias each
    for k, v in used.items():  # basicsr names torchvision's features.<i> by layer
        layer, kind = k.split(".")
        assert torch.equal(v, vgg[f"features.{vgg_arch.NAMES['vgg19'].index(layer)}.{kind}"]), k
    pretrained, _ = pretrained_generator_state(download=False)
    assert all(torch.equal(model.net_g.state_dict()[k], v) for k, v in pretrained.items())


def _outputs(root: Path) -> dict[str, Path]:
    return {"generator_path": root / "generator.pth", "model_card_path": root / "card.json"}


def test_paper_training_resumes_exactly_and_exports(
    paper_env, stand_in_sources, tmp_path: Path
) -> None:
    with sources.allow_unverified_for_tests():
        opt = _options(paper_env)
        every_iter = _options(paper_env, **{"finetune.save_checkpoint_freq": 1})
    straight = T.train(
        {**opt, "path": _paths(opt, tmp_path / "straight")}, **_outputs(tmp_path / "straight")
    )
    assert straight.completed and straight.iterations == 4

    broken = {**every_iter, "path": _paths(every_iter, tmp_path / "broken")}
    T.train(broken, **_outputs(tmp_path / "broken"), stop_after=1)
    _check_ema_and_pretrained_d(broken, paper_env)
    stopped = T.train(broken, **_outputs(tmp_path / "broken"), stop_after=2)
    assert (stopped.completed, stopped.iterations) == (False, 2)
    resumed = T.train(broken, **_outputs(tmp_path / "broken"))
    assert (resumed.completed, resumed.iterations, resumed.resumed_from) == (True, 4, 2)

    a = torch.load(straight.generator_path, weights_only=True)["params_ema"]
    b = torch.load(resumed.generator_path, weights_only=True)["params_ema"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the interruption changed nothing
    log = T.loss_log(resumed.loss_csv)
    assert list(log["iter"]) == [1, 2, 3, 4]
    assert (log["l_g_percep"] > 0).all() and np.isfinite(log[list(GAN_LOG_KEYS)]).all().all()
    assert log[list(GAN_LOG_KEYS)].equals(T.loss_log(straight.loss_csv)[list(GAN_LOG_KEYS)])

    net, info = load_generator_file(resumed.generator_path)  # export: strict x4plus load
    card = json.loads(Path(resumed.model_card_path).read_text())
    assert info.sha256 == card["generator"]["sha256"] and card["ema_decay"] == 0.999
    assert card["sources"]["vgg19"]["note"].startswith("UNVERIFIED")
    assert card["sources"]["discriminator"]["source"] == "RealESRGAN_x4plus_netD"
    assert card["resumed_from"] == 2 and card["batch_size"] == 2
    # Every part of the paper's protocol is there: only the offline x4plus start (the ncnn
    # conversion, unless the official .pth is cached) and, in 4 iterations, a discriminator
    # at chance can be named.
    assert set(card["differs_from_paper"]) <= {PAPER_GAPS["fp16"], PAPER_GAPS["chance"]}
    assert [i for i, _ in card["validation"]["curve"]] == [2, 4]


def _paths(opt: dict[str, Any], root: Path) -> dict[str, Any]:
    """The option paths of ``opt`` moved under ``root`` (two runs of one recipe side by side)."""
    exp = root / "exp"
    moved = {
        "experiments_root": exp,
        "models": exp / "models",
        "training_states": exp / "training_states",
        "log": exp,
        "visualization": exp / "visualization",
        "tb_logger": exp / "tb_logger",
    }
    return {**opt["path"], **{k: str(v) for k, v in moved.items()}}


def _check_ema_and_pretrained_d(opt: dict[str, Any], env: dict[str, Any]) -> None:
    """After one iteration: EMA = 0.999 x pretrained + 0.001 x trained, and the
    discriminator is one Adam step (lr 1e-4) away from the stand-in it was loaded from."""
    models = Path(opt["path"]["models"])
    g = torch.load(models / "net_g_1.pth", weights_only=True)
    pretrained, _ = pretrained_generator_state(download=False)
    for k, pre in pretrained.items():
        expected = pre.clone().mul_(0.999).add_(g["params"][k], alpha=0.001)
        assert torch.allclose(g["params_ema"][k], expected, rtol=0, atol=1e-6), k
    assert any(not torch.equal(g["params"][k], v) for k, v in pretrained.items())
    d = torch.load(models / "net_d_1.pth", weights_only=True)["params"]
    standin = torch.load(env["standins"]["RealESRGAN_x4plus_netD"], weights_only=True)["params"]
    moved = [
        (d[k] - v).abs().max().item()
        for k, v in standin.items()
        if k.endswith(("weight_orig", ".weight", "bias"))
    ]
    assert 0 < max(moved) <= 1.5e-4
