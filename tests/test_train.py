"""Fine-tuning through realesrgan/basicsr on CPU: options, sources, steps, resume, torchrun."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.core.params import load_params
from cxrsr_utils.core.params_networks import FinetuneParams
from cxrsr_utils.external import sources
from cxrsr_utils.finetune import options as finetune_options
from cxrsr_utils.finetune import steps as T
from cxrsr_utils.finetune.identity import options_digest
from cxrsr_utils.finetune.logs import CSV_BASE_COLUMNS, GAN_LOG_KEYS
from cxrsr_utils.finetune.model_card import GeneratorRecord
from cxrsr_utils.finetune.option_files import read_options
from cxrsr_utils.finetune.options import build_options, iterations_for_epochs
from cxrsr_utils.finetune.records import TrainResult
from cxrsr_utils.finetune.speed import SPEED_OPTION, speed_options
from cxrsr_utils.finetune.start_weights import TrainingSources
from cxrsr_utils.finetune.torchrun import distributed_options
from cxrsr_utils.images.radiographs import read_radiograph, resize
from cxrsr_utils.sr.networks import (
    X4PLUS_GENERATOR,
    WeightsInfo,
    load_generator_file,
    pretrained_generator_state,
)
from tests.test_evaluate import card_json

ROOT = Path(__file__).resolve().parents[1]
TINY_G = {
    "type": "RRDBNet",
    "num_in_ch": 3,
    "num_out_ch": 3,
    "num_feat": 8,
    "num_block": 1,
    "num_grow_ch": 4,
    "scale": 4,
}
TINY_D = {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": 8, "skip_connection": True}


def write_training_set(root: Path, images: list[Path], side: int = 128) -> Path:
    """``images`` shrunk to ``side`` x ``side`` 8-bit PNGs in ``root``, plus realesrgan's
    meta_info list (``root/meta_info.txt``); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for path in images:
        image = resize(read_radiograph(path).as_float(), (side, side))
        Image.fromarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)).save(
            root / path.name
        )
    (root / "meta_info.txt").write_text("".join(f"{p.name}\n" for p in images))
    return root


@pytest.fixture(scope="module")
def train_data(tmp_path_factory: pytest.TempPathFactory, nih_images: list[Path]) -> Path:
    """Four real NIH radiographs shrunk to 128 x 128 PNGs plus realesrgan's meta_info list."""
    return write_training_set(tmp_path_factory.mktemp("nih128"), nih_images[:4])


TINY_RECIPE: dict[str, Any] = dict(
    total_iter=5,
    batch_size=1,
    gt_size=64,
    perceptual_weight=0,
    generator_init="scratch",
    discriminator_init="scratch",
    net_d_init_iters=1,
    save_checkpoint_freq=2,
    print_freq=1,
    queue_size=4,
)


def tiny_options(data: Path, root: Path, **overrides: Any) -> dict[str, Any]:
    """Options with tiny networks from scratch: the mechanics, cheaply. ``overrides`` are
    FinetuneParams fields or build_options arguments."""
    recipe = {
        **TINY_RECIPE,
        **{k: overrides.pop(k) for k in list(overrides) if k in FinetuneParams.model_fields},
    }
    kwargs: dict[str, Any] = dict(
        name="tiny",
        dataroot_gt=data,
        meta_info=data / "meta_info.txt",
        experiments_root=root,
        variant="paper",
        seed=0,
        device="cpu",
        generator_arch=TINY_G,
        discriminator_arch=TINY_D,
        download=False,
    )
    kwargs.update(overrides)
    return build_options(FinetuneParams(**recipe), **kwargs)


def outputs(root: Path) -> dict[str, Path]:
    return {
        "generator_path": root / "out" / "net_g_ema.pth",
        "model_card_path": root / "out" / "model_card.json",
    }


def run_two_gloo_processes(
    data: Path, tmp_path: Path, **overrides: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Train tiny networks on ``data`` for 3 iterations at batch 2 (:func:`tiny_options` with
    ``overrides``) in two CPU processes under torchrun (gloo, one thread each); returns the
    finished process and the model card it wrote. Fails the test when the run fails."""
    opt = tiny_options(
        data, tmp_path / "exp", batch_size=2, total_iter=3, use_tb_logger=False, **overrides
    )
    cmd, _ = T.torchrun_command(opt, nproc=2, opt_path=tmp_path / "opt.yml", **outputs(tmp_path))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(outputs(tmp_path)["model_card_path"].read_text())


def _fake_sources(**kwargs: Any) -> TrainingSources:
    def info(name: str) -> WeightsInfo:
        return WeightsInfo(
            source=name, path=f"/weights/{name}.pth", sha256="0" * 64, fp16_rounded=False
        )

    return TrainingSources(info("RealESRGAN_x4plus"), info("RealESRGAN_x4plus_netD"), info("vgg19"))


def test_paper_options(train_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FinetuneParams' defaults (with 8 epochs of 8100 images) are the paper's protocol."""
    # The paper setting needs netD and VGG19, which have no offline source: stand them in.
    monkeypatch.setattr(finetune_options, "resolve_sources", _fake_sources)
    opt = build_options(
        FinetuneParams(total_iter=iterations_for_epochs(8100, 10, 8)),
        name="paper",
        dataroot_gt=train_data,
        meta_info=train_data / "meta_info.txt",
        experiments_root=tmp_path,
        variant="paper",
        seed=0,
        device="cpu",
        dataset_enlarge_ratio=3,
    )  # 4 images, batch 10
    assert opt["model_type"] == "CxrRealESRGANModel" and opt["scale"] == 4
    # RealESRGAN_x4plus: RRDBNet with 23 blocks of 64 features, netD with skip connections.
    g, d = opt["network_g"], opt["network_d"]
    assert (g["type"], g["num_block"], g["num_feat"], g["num_grow_ch"], g["scale"]) == (
        "RRDBNet",
        23,
        64,
        32,
        4,
    )
    assert g == X4PLUS_GENERATOR
    assert (d["type"], d["num_feat"], d["skip_connection"]) == ("UNetDiscriminatorSN", 64, True)
    assert opt["path"]["pretrain_network_g"] == "/weights/RealESRGAN_x4plus.pth"
    assert opt["path"]["param_key_g"] == "params_ema"
    assert opt["path"]["pretrain_network_d"] == "/weights/RealESRGAN_x4plus_netD.pth"
    assert opt["path"]["vgg19"] == "/weights/vgg19.pth"
    ds = opt["datasets"]["train"]
    assert (ds["use_hflip"], ds["use_rot"]) == (True, False)
    assert ds["batch_size_per_gpu"] == 10 and ds["gt_size"] == opt["gt_size"] == 256
    assert ds["type"] == "RealESRGANDataset" and ds["final_sinc_prob"] == 0.8
    t = opt["train"]
    assert t["total_iter"] == 6480
    for optim in (t["optim_g"], t["optim_d"]):
        assert optim == {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]}
    assert t["pixel_opt"] == {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}
    p = t["perceptual_opt"]
    assert p["layer_weights"] == {
        "conv1_2": 0.1,
        "conv2_2": 0.1,
        "conv3_4": 1.0,
        "conv4_4": 1.0,
        "conv5_4": 1.0,
    }
    assert (
        p["vgg_type"],
        p["use_input_norm"],
        p["range_norm"],
        p["perceptual_weight"],
        p["style_weight"],
        p["criterion"],
    ) == ("vgg19", True, False, 1.0, 0, "l1")
    assert t["gan_opt"]["gan_type"] == "vanilla" and t["gan_opt"]["loss_weight"] == 0.1
    assert t["ema_decay"] == 0.999 and t["net_d_init_iters"] == 0
    assert opt["auto_resume"] is True
    assert (opt["l1_gt_usm"], opt["percep_gt_usm"], opt["gan_gt_usm"]) == (True, True, False)
    assert opt["resize_prob"] == [0.2, 0.7, 0.1] and opt["resize_prob2"] == [0.3, 0.4, 0.3]
    assert opt["cxrsr"]["degradation"] == "realesrgan" and opt["cxrsr"]["loss"] == "gan"
    assert opt["cxrsr"]["n_images"] == 4


def test_variants(train_data: Path, tmp_path: Path) -> None:
    matched = tiny_options(train_data, tmp_path, variant="matched")
    assert matched["cxrsr"]["degradation"] == "bicubic" and "gan_opt" in matched["train"]
    for variant in ("l1", "matched_l1"):
        opt = tiny_options(train_data, tmp_path, variant=variant)
        assert "gan_opt" not in opt["train"] and "optim_d" not in opt["train"]
        assert "network_d" not in opt and "perceptual_opt" not in opt["train"]
        assert opt["l1_gt_usm"] is False  # PSNR-oriented: L1 against the plain HR
    assert tiny_options(train_data, tmp_path, variant="matched_l1")["cxrsr"]["degradation"] == (
        "bicubic"
    )
    with pytest.raises(ValueError, match="variant"):
        tiny_options(train_data, tmp_path, variant="nope")
    with pytest.raises(ValueError, match="queue_size"):
        tiny_options(train_data, tmp_path, batch_size=3, queue_size=4)
    with pytest.raises(ValueError, match="fewer than one batch"):
        tiny_options(train_data, tmp_path, batch_size=8, queue_size=8)


def _skip_if_resolvable(name: str) -> None:
    try:
        sources.resolve(name, download=False)
    except sources.SourceError:
        return
    pytest.skip(f"{name} is available here, so the offline error cannot be shown")


def test_paper_setting_stops_without_offline_sources(train_data: Path, tmp_path: Path) -> None:
    _skip_if_resolvable("RealESRGAN_x4plus_netD")
    with pytest.raises(sources.SourceError, match=r"RealESRGAN_x4plus_netD.*discriminator_init"):
        tiny_options(train_data, tmp_path, discriminator_init="pretrained", discriminator_arch=None)
    _skip_if_resolvable("vgg19")
    with pytest.raises(sources.SourceError, match=r"vgg19.*perceptual_weight=0"):
        tiny_options(train_data, tmp_path, perceptual_weight=1.0)


@pytest.mark.slow
def test_real_generator_two_iterations_then_finish(train_data: Path, tmp_path: Path) -> None:
    """Two CPU iterations of the real x4plus generator (pretrained) change its weights."""
    recipe = FinetuneParams(
        total_iter=3,
        batch_size=1,
        gt_size=64,
        perceptual_weight=0,
        discriminator_init="scratch",
        net_d_init_iters=0,
        save_checkpoint_freq=2,
    )
    opt = build_options(
        recipe,
        name="x4plus",
        dataroot_gt=train_data,
        meta_info=train_data / "meta_info.txt",
        experiments_root=tmp_path / "exp",
        variant="paper",
        seed=0,
        device="cpu",
        download=False,
        use_tb_logger=False,
    )
    assert opt["network_g"] == X4PLUS_GENERATOR
    notes = opt["cxrsr"]["sources"]["notes"]
    assert "scratch" in notes["discriminator"] and "perceptual weight 0" in notes["vgg19"]
    first = T.train(opt, **outputs(tmp_path), stop_after=2)
    assert (first.completed, first.iterations) == (False, 2)
    before, _ = pretrained_generator_state(download=False)
    after = torch.load(tmp_path / "exp" / "models" / "net_g_2.pth", weights_only=True)
    changed = [k for k in before if not torch.equal(before[k], after["params"][k])]
    assert len(changed) == len(before)  # every tensor moved
    assert all(torch.isfinite(v).all() for v in after["params"].values())
    assert any(not torch.equal(before[k], after["params_ema"][k]) for k in before)
    log = T.loss_log(tmp_path / "exp")
    assert list(log["iter"]) == [1, 2] and np.isfinite(log["l_g_pix"]).all()

    done = T.train(opt, **outputs(tmp_path))
    assert (done.completed, done.iterations, done.resumed_from) == (True, 3, 2)
    net, info = load_generator_file(done.generator_path)  # strict x4plus load
    assert info.sha256 == json.loads(Path(done.model_card_path).read_text())["generator"]["sha256"]


@pytest.mark.slow
def test_resume_after_interruption_is_exact(train_data: Path, tmp_path: Path) -> None:
    straight_root, broken_root = tmp_path / "straight", tmp_path / "broken"
    straight = T.train(tiny_options(train_data, straight_root / "exp"), **outputs(straight_root))
    assert straight.completed and straight.resumed_from is None

    opt = tiny_options(train_data, broken_root / "exp")
    stopped = T.train(opt, **outputs(broken_root), stop_after=3)
    assert (stopped.completed, stopped.iterations) == (False, 3)
    assert not outputs(broken_root)["generator_path"].exists()
    states = sorted(p.name for p in (broken_root / "exp" / "training_states").iterdir())
    assert states == ["2.state"]  # only the newest checkpoint is kept

    resumed = T.train(opt, **outputs(broken_root))
    assert (resumed.completed, resumed.iterations, resumed.resumed_from) == (True, 5, 2)
    assert list(T.loss_log(broken_root / "exp")["iter"]) == [1, 2, 3, 4, 5]
    a = torch.load(straight.generator_path, weights_only=True)["params_ema"]
    b = torch.load(resumed.generator_path, weights_only=True)["params_ema"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # same weights as the uninterrupted run
    losses = list(GAN_LOG_KEYS)
    assert T.loss_log(straight_root / "exp")[losses].equals(T.loss_log(broken_root / "exp")[losses])
    assert not list((broken_root / "exp" / "training_states").iterdir())  # pruned when done
    card = json.loads(outputs(broken_root)["model_card_path"].read_text())
    assert card["iterations"] == card["total_iter"] == 5 and card["resumed_from"] == 2
    assert card["options_sha256"] == options_digest(opt) == straight.options_sha256
    assert card["sources"]["notes"]["discriminator"].startswith("trained from scratch")

    again = T.train(opt, **outputs(broken_root))  # a finished run is recognised, not redone
    assert again.completed and again.seconds_per_iter is None


def test_resume_refuses_another_recipe(train_data: Path, tmp_path: Path) -> None:
    T.train(
        tiny_options(train_data, tmp_path / "exp", variant="matched"),
        **outputs(tmp_path),
        stop_after=2,
    )
    other = tiny_options(train_data, tmp_path / "exp", variant="matched", seed=1)
    with pytest.raises(RuntimeError, match="options_sha256"):
        T.train(other, **outputs(tmp_path))


def test_pixel_only_variant_bf16_and_logs(train_data: Path, tmp_path: Path) -> None:
    opt = tiny_options(
        train_data, tmp_path / "exp", variant="matched_l1", total_iter=2, autocast="bf16"
    )
    result = T.train(opt, **outputs(tmp_path))
    log = T.loss_log(result.loss_csv)
    assert list(log.columns) == [*CSV_BASE_COLUMNS, "l_g_pix"]
    assert np.isfinite(log["l_g_pix"]).all() and log["lr_d"].isna().all()
    assert list((tmp_path / "exp" / "tb_logger").glob("events.out.tfevents.*"))
    card = json.loads(Path(result.model_card_path).read_text())
    assert (card["loss"], card["degradation"], card["autocast"]) == ("l1", "bicubic", "bf16")


def test_torchrun_command_and_options(train_data: Path, tmp_path: Path) -> None:
    opt = tiny_options(train_data, tmp_path / "exp", batch_size=2)
    cmd, dist_opt = T.torchrun_command(
        opt, nproc=2, opt_path=tmp_path / "opt.yml", **outputs(tmp_path), params_hash="abc"
    )
    assert cmd[:5] == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
    ]
    assert cmd[5:9] == ["-m", "cxrsr_utils.finetune.steps", "--opt", str(tmp_path / "opt.yml")]
    assert cmd[-2:] == ["--params-hash", "abc"]
    assert dist_opt["launcher"] == "pytorch" and dist_opt["dist_params"]["backend"] == "gloo"
    assert dist_opt["datasets"]["train"]["batch_size_per_gpu"] == 1
    assert read_options(tmp_path / "opt.yml") == dist_opt
    assert options_digest(dist_opt) == options_digest(opt)  # same recipe, other layout
    with pytest.raises(ValueError, match="does not split"):
        distributed_options(opt, nproc=3)
    with pytest.raises(RuntimeError, match="torchrun_command"):
        T.train(dist_opt, **outputs(tmp_path))  # not started by torchrun


@pytest.mark.slow
def test_two_cpu_processes_with_gloo(train_data: Path, tmp_path: Path) -> None:
    from cxrsr_utils.finetune.validation import validation_options

    layout = StudyLayout(tmp_path / "run")
    write_val_pairs(layout)
    validation = validation_options(
        layout.pair_folder("nih_val", "hr"),
        layout.pair_folder("nih_val", "lr"),
        freq=2,
        checkpoint="best_val",
    )
    _, card = run_two_gloo_processes(train_data, tmp_path, validation=validation)
    assert card["world_size"] == 2 and card["total_iter"] == 3
    # The card names the exported generator's iteration, the one best_val chose.
    assert card["iterations"] == card["validation"]["chosen_iter"] == card["generator"]["iteration"]
    assert list(T.loss_log(tmp_path / "exp")["iter"]) == [1, 2, 3]
    # Rank 0 validated at iterations 2 and 3 while rank 1 waited.
    assert [i for i, _ in card["validation"]["curve"]] == [2, 3]


def write_val_pairs(layout: StudyLayout, n: int = 2, side: int = 32) -> list[str]:
    """``n`` synthetic gray validation pairs (HR ``side``², its bicubic LR) in the run's NIH
    validation folders; returns their names."""
    rng = np.random.default_rng(0)
    names = [f"val{i}.png" for i in range(n)]
    for name in names:
        hr = rng.random((side, side), dtype=np.float32)
        lr = resize(hr, (side // 4, side // 4))
        for role, image in (("hr", hr), ("lr", lr)):
            folder = layout.pair_folder("nih_val", role)
            folder.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name)
    return names


def _meta_info(work: Path, n: int) -> None:
    """Notebook 01's meta_info in the run ``work``, listing ``n`` images, and two validation
    pairs."""
    meta = StudyLayout(work).meta_info
    meta.parent.mkdir(parents=True)
    meta.write_text("".join(f"originals/{i:05d}.png\n" for i in range(n)))
    write_val_pairs(StudyLayout(work))


def test_paper_profile_gives_the_paper_options(tmp_path: Path, monkeypatch) -> None:
    _meta_info(tmp_path, 8100)  # the paper's 3600 + 3600 + 900 images
    monkeypatch.setattr(finetune_options, "resolve_sources", _fake_sources)
    params = load_params("paper", {"device": "cpu"})
    opt = T.profile_options(params, tmp_path, "paper")
    t = opt["train"]
    assert t["total_iter"] == 6480 and t["ema_decay"] == 0.999
    assert opt["datasets"]["train"]["batch_size_per_gpu"] == 10 and opt["gt_size"] == 256
    assert t["gan_opt"]["loss_weight"] == 0.1 and t["perceptual_opt"]["perceptual_weight"] == 1.0
    assert opt["resize_range"] == [0.15, 1.5] and opt["noise_range2"] == [1, 25]
    assert opt["datasets"]["train"]["kernel_prob"] == [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
    assert params.finetune.variants == ("paper", "matched", "l1", "matched_l1")


def test_paper_profile_stops_offline_without_netd(tmp_path: Path, monkeypatch) -> None:
    from cxrsr_utils.external.sources import SourceError

    monkeypatch.setenv("CXRSR_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CXRSR_MIRROR", str(tmp_path / "empty-mirror"))
    _meta_info(tmp_path, 20)
    with pytest.raises(SourceError, match="RealESRGAN_x4plus_netD"):
        T.profile_options(load_params("paper", {"device": "cpu"}), tmp_path, "paper")


def test_quick_profile_replaces_the_offline_sources(tmp_path: Path) -> None:
    _meta_info(tmp_path, 20)
    opt = T.profile_options(load_params("quick"), tmp_path, "paper")
    assert opt["path"].get("pretrain_network_d") is None
    assert opt["train"]["net_d_init_iters"] == 10
    assert "perceptual_opt" not in opt["train"] or (
        opt["train"]["perceptual_opt"]["perceptual_weight"] == 0
    )


def result(sources: dict[str, Any] | None = None, **changes: Any) -> TrainResult:
    """A finished run's result, with ``changes``."""
    fields: dict[str, Any] = {
        "completed": True,
        "iterations": 40,
        "total_iter": 40,
        "resumed_from": None,
        "generator_path": None,
        "model_card_path": None,
        "loss_csv": "",
        "experiments_root": "",
        "options_sha256": "",
        "sources": sources or {},
        "seconds": 1.0,
        "seconds_per_iter": 0.1,
        "peak_rss_mb": 1.0,
    }
    return TrainResult(**{**fields, **changes})


def test_sources_table_names_each_source_or_its_replacement() -> None:
    table = T.sources_table(
        {
            "paper": result(
                {
                    "generator": {"source": "RealESRGAN_x4plus_ncnn"},
                    "discriminator": None,
                    "vgg19": {"source": "vgg19"},
                    "notes": {"discriminator": "trained from scratch"},
                }
            ),
            "l1": result({"generator": None, "notes": {}}),
        }
    )
    assert list(table.columns) == [
        "variant",
        "iterations",
        "generator init",
        "discriminator init",
        "VGG19",
    ]
    assert table.iloc[0].tolist() == [
        "paper",
        40,
        "RealESRGAN_x4plus_ncnn",
        "trained from scratch",
        "vgg19",
    ]
    assert table.iloc[1].tolist() == ["l1", 40, "scratch", "none", "none"]


def _recording_sources(**kwargs: Any) -> TrainingSources:
    """Stand-in sources for what resolve_sources is asked; its notes record the arguments."""

    def info(name: str) -> WeightsInfo:
        return WeightsInfo(
            source=name, path=f"/weights/{name}.pth", sha256="0" * 64, fp16_rounded=False
        )

    gan = kwargs["gan"]
    return TrainingSources(
        info("RealESRGAN_x4plus") if kwargs.get("generator_init") == "pretrained" else None,
        info("RealESRGAN_x4plus_netD")
        if gan and kwargs.get("discriminator_init") == "pretrained"
        else None,
        info("vgg19") if kwargs.get("perceptual_weight", 1.0) > 0 else None,
        {"arguments": json.dumps(kwargs, sort_keys=True)},
    )


@pytest.mark.parametrize("profile, n_images", [("quick", 20), ("paper", 8100)])
def test_profiles_give_the_options_they_gave_before_the_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str, n_images: int
) -> None:
    """Every variant's options and digest equal those recorded from the code before train.py
    was split (tests/data/finetune_options_before_split.json): the quick results depend on
    them, and fine-tune folders are identified by the digest. The validation settings added
    since (issue 9) are checked apart: they choose which generator is exported, not what is
    trained, so they stay out of the digest (the run identity names them)."""
    recorded = json.loads(
        (ROOT / "tests" / "data" / "finetune_options_before_split.json").read_text()
    )["runs"]
    monkeypatch.setattr(finetune_options, "resolve_sources", _recording_sources)
    params = load_params(profile, {"device": "cpu"})
    for variant in ("paper", "matched", "l1", "matched_l1"):
        work = tmp_path / variant
        _meta_info(work, n_images)
        opt = T.profile_options(params, work, variant)
        validation = opt["cxrsr"].pop("validation")
        # The speed switches are the machine's (channels_last "auto" is on for AMX CPUs since
        # issue 20): checked against the rule, apart from the recorded options and digest.
        speed = opt["cxrsr"].pop(SPEED_OPTION, {})
        assert speed == speed_options(params.finetune, "cpu"), variant
        assert validation["freq"] == params.finetune.val_freq
        assert validation["checkpoint"] == "best_val" and validation["images"] == [
            "val0.png",
            "val1.png",
        ]
        assert validation["lr"] == str(StudyLayout(work).pair_folder("nih_val", "lr").resolve())
        assert validation["infer"]["precision"] == params.evaluate.precision
        text = json.dumps(opt, sort_keys=True).replace(str(work.resolve()), "<work>")
        before = recorded[f"{profile}/{variant}"]
        assert json.loads(text) == before["options"], variant
        assert options_digest(opt) == before["digest"], variant
        validated = {**opt, "cxrsr": {**opt["cxrsr"], "validation": validation}}
        assert options_digest(validated) == before["digest"], variant


def test_digest_ignores_where_the_weights_lie_and_how_they_were_found(tmp_path: Path) -> None:
    """An offline and an online machine train the same recipe: a source's path and note (which
    may quote a failed download) leave the digest alone; its SHA-256 does not."""
    params = load_params("quick", {"device": "cpu"})
    _meta_info(tmp_path, 20)
    opt = T.profile_options(params, tmp_path, "paper")
    other = copy.deepcopy(opt)
    generator = other["cxrsr"]["sources"]["generator"]
    generator["path"] = "/elsewhere/RealESRGAN_x4plus.pth"
    generator["note"] = (
        "Could not download ... (<urlopen error [Errno -2] Name or service not known>)"
    )
    assert options_digest(other) == options_digest(opt)
    generator["sha256"] = "0" * 64
    assert options_digest(other) != options_digest(opt)


# -- notebook 03's calls -----------------------------------------------------------------------


def test_train_variants_trains_each_variant_in_the_profiles_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def spy(params: Any, work: Any, variant: str, *, data_manifest_hash: str | None) -> Any:
        calls.append((work, variant, data_manifest_hash))
        return result(iterations=len(calls))

    monkeypatch.setattr(T, "train_variant", spy)
    params = load_params("quick", {"finetune.variants": ["matched", "paper"]})
    results = T.train_variants(params, tmp_path, data_manifest_hash="d1")
    assert calls == [(tmp_path, "matched", "d1"), (tmp_path, "paper", "d1")]
    assert list(results) == ["matched", "paper"] and results["paper"].iterations == 2
    validation = {"chosen_by": "best_val", "chosen_iter": 20, "psnr": 31.23456, "curve": []}
    runs = T.runs_table(
        {
            "a": result(resumed_from=20, seconds=12.4, iter_seconds=3.456, validation=validation),
            "b": result(peak_rss_mb=812.6),
        }
    )
    assert list(runs.columns) == [
        "variant",
        "iterations",
        "total_iter",
        "resumed_from",
        "seconds",
        "s_per_iter",
        "peak_rss_mb",
        "chosen_by",
        "chosen_iter",
        "val_psnr",
    ]
    assert runs.iloc[0].tolist() == ["a", 40, 40, 20, 12, 3.46, 1, "best_val", 20, 31.235]
    assert runs.iloc[1].tolist()[:3] == ["b", 40, 40] and runs.iloc[1].peak_rss_mb == 813
    assert runs.resumed_from.isna().tolist() == [False, True]  # ran from the start
    assert runs.s_per_iter.isna().tolist() == [False, True]


def test_model_cards_and_loss_logs_are_saved_into_the_runs_reports(tmp_path: Path) -> None:
    layout = StudyLayout(tmp_path / "run")
    card = tmp_path / "card.json"
    generator = GeneratorRecord(str(ROOT / "work" / "g.pth"), "g" * 64, "params_ema", "EMA", 5)
    card.write_text(json.dumps(card_json("paper", generator=generator)))
    experiments = tmp_path / "exp"
    experiments.mkdir()
    log = "iter,epoch,l_pix\n1,0,0.5\n2,0,0.25\n"
    (experiments / "loss_log.csv").write_text(log)
    results = {"paper": result(model_card_path=str(card), experiments_root=str(experiments))}

    [copy] = T.save_model_cards(results, layout)
    assert copy == layout.model_cards / "paper.json"
    # Paths inside the project are written relative to it, so reports read the same anywhere.
    portable = dataclasses.replace(generator, path="work/g.pth")
    assert json.loads(copy.read_text()) == card_json("paper", generator=portable)

    logs = T.save_loss_logs(results, layout)
    assert list(logs) == ["paper"] and logs["paper"]["l_pix"].tolist() == [0.5, 0.25]
    assert (layout.tables / "03_loss_log_paper.csv").read_text() == log
    assert not (layout.tables / "03_loss_log_paper.md").exists()


def test_variant_torchrun_command_is_train_variants_run(tmp_path: Path) -> None:
    _meta_info(tmp_path, 20)
    params = load_params("quick", {"finetune.gpus": 2})
    layout = StudyLayout(tmp_path)
    cmd = T.variant_torchrun_command(params, tmp_path, "paper", data_manifest_hash="d1")
    by_hand, _ = T.torchrun_command(
        T.profile_options(params, tmp_path, "paper"),
        nproc=2,
        opt_path=layout.torchrun_options("paper"),
        generator_path=layout.generator("paper"),
        model_card_path=layout.model_card("paper"),
        params_hash=params.digest(),
        data_manifest_hash="d1",
    )
    assert cmd == by_hand and "--nproc_per_node=2" in cmd
    assert cmd[cmd.index("--generator-path") + 1] == str(layout.generator("paper"))
