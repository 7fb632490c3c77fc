"""Notebooks 01-05 under the paper profile, on the mirror, with stand-in discriminator and VGG19.

Every branch the paper profile takes (pretrained discriminator, VGG19 perceptual loss, four
variants, tiled evaluation, its classifier settings) runs once, on CPU, with the sizes shrunk
by ``--set``-style overrides and fp16 evaluation replaced by bf16 (where the CPU has native
bf16) or fp32. It takes minutes (a slow test: part of ``make test``, left out of
``make test-fast``; ``make paper-smoke`` runs it alone). It used to run only when asked, and
rotted unnoticed (its overrides stopped loading), so it runs in CI now, and a fast test checks
that the overrides load. The stand-ins are made here, in a temporary mirror; the notebooks'
kernels accept them because the test sets ``CXRSR_ALLOW_UNVERIFIED_FOR_TESTS=1``, which the
study's own commands never set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cxrsr_utils import runner
from cxrsr_utils.core import cpu
from cxrsr_utils.core.layout import Paths
from cxrsr_utils.core.params import load_params
from cxrsr_utils.external import sources
from cxrsr_utils.sr.networks import write_standin_weights

ROOT = Path(__file__).resolve().parents[1]


def paper_smoke_overrides() -> dict[str, object]:
    """The paper profile shrunk to minutes on a CPU; everything not named stays the paper's."""
    return {
        "device": "cpu",
        "nih.n_finetune": 6,
        "nih.n_val": 2,
        "nih.n_test": 3,
        "nih.multiscale_originals": 2,
        "nih.n_crops": 3,
        "nih.crop_size": 128,  # the multiscale copies of 512-px originals are smaller than 400
        "nih.max_side": 512,
        "nih.eval_hr_size": 128,
        "kermany.n_per_class": 6,
        "kermany.hr_size": 128,
        "preview.n_draws": 4,
        "preview.n_images": 2,
        "preview.draws_per_image": 2,
        "finetune.epochs": None,
        "finetune.total_iter": 2,
        "finetune.batch_size": 2,
        "finetune.gt_size": 64,
        "finetune.queue_size": 4,
        "finetune.num_workers": 0,
        "finetune.save_checkpoint_freq": 1,
        "finetune.print_freq": 1,
        # The paper's tile 256 on a 256 LR is one tile per image: tile 32 on a 32 LR likewise.
        "evaluate.tile": 32,
        "evaluate.batch_size": 2,
        "evaluate.n_bootstrap": 100,
        "evaluate.precision": "bf16" if cpu.native_bf16() else "fp32",  # fp16 is for GPUs
        "classifier.epochs": 1,
        "classifier.min_epochs": 0,  # below epochs, as the schema requires
        "classifier.batch_size": 4,
        "classifier.n_bootstrap": 100,
    }


def test_the_smoke_overrides_load() -> None:
    params = load_params("paper", paper_smoke_overrides())
    assert params.finetune.total_iter == 2 and params.classifier.epochs == 1


@pytest.mark.slow
def test_paper_profile_notebooks_run_on_stand_ins(
    tmp_path: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "mirror"
    write_standin_weights(fake)
    (fake / "data").symlink_to(mirror / "data")
    out = tmp_path / "out"
    for var, value in (
        ("CXRSR_MIRROR", fake),
        ("CXRSR_CACHE", tmp_path / "cache"),
        ("CXRSR_OUTPUT_ROOT", out),
        (sources.ENV_ALLOW_UNVERIFIED, "1"),
        # the kernels import this checkout's package, whatever is installed
        ("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))),
    ):
        monkeypatch.setenv(var, str(value))

    manifest = runner.run_study("paper", paper_smoke_overrides())

    assert list(manifest["wall_seconds"]["per_notebook"]) == [
        b.name for b in runner.study_notebooks()
    ]
    paths = Paths(load_params("paper", paper_smoke_overrides()))
    assert paths.root == out
    cards = paths.reports / "model_cards"
    for variant in ("paper", "matched", "l1", "matched_l1"):
        card = json.loads((cards / f"{variant}.json").read_text())
        assert card["total_iter"] == 2 and card["ema_decay"] == 0.999
        if variant in ("paper", "matched"):  # the GAN variants use both stand-ins
            assert card["sources"]["vgg19"]["note"].startswith("UNVERIFIED")
            assert card["sources"]["discriminator"]["source"] == "RealESRGAN_x4plus_netD"
    for name in ("01_counts", "03_sources_used", "04_summary", "04_paired_tests"):
        assert (paths.tables / f"{name}.csv").is_file(), name
