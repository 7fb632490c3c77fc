"""Fine-tuning's speed switches (channels_last, torch.compile, cudnn.benchmark) on CPU: they
enter the options only when on, leave the digest alone, touch the networks a step runs but
not the EMA, and train the same weights, saved under the plain networks' keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from cxrsr_utils.core import cpu
from cxrsr_utils.core.params_networks import FinetuneParams
from cxrsr_utils.finetune import checkpoints  # noqa: F401  (basicsr shim, our model)
from cxrsr_utils.finetune import steps as T
from cxrsr_utils.finetune.identity import options_digest
from cxrsr_utils.finetune.logs import GAN_LOG_KEYS
from cxrsr_utils.finetune.speed import SPEED_OPTION, speed_options
from tests.test_train import (  # noqa: F401  (train_data: fixture)
    outputs,
    run_two_gloo_processes,
    tiny_options,
    train_data,
)

# Three iterations (the discriminator warms up alone in the first), an EMA that follows the
# generator and a learning rate that moves it by ~1e-3 per step: a broken step would show.
SHORT = dict(total_iter=3, ema_decay=0.5, lr_g=1e-3, use_tb_logger=False)


def test_switches_enter_the_options_only_when_on(
    train_data: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cpu, "cpu_kind", lambda flags=None: "avx2")
    plain = tiny_options(train_data, tmp_path)
    assert SPEED_OPTION not in plain["cxrsr"]  # the options of every run so far
    auto = tiny_options(train_data, tmp_path, channels_last="auto", cudnn_benchmark="auto")
    assert SPEED_OPTION not in auto["cxrsr"]  # auto: on a GPU only
    on = tiny_options(train_data, tmp_path, compile=True, channels_last="auto")
    assert on["cxrsr"][SPEED_OPTION] == {"compile": True}
    assert options_digest(on) == options_digest(plain)  # the same recipe, trained faster
    recipe = FinetuneParams(total_iter=1, channels_last="auto", compile="auto")
    assert speed_options(recipe, "cuda") == {"channels_last": True, "compile": True}
    assert speed_options(recipe, "cpu") == {}
    # channels_last's auto on the CPU: on where it was measured faster (AMX), off elsewhere.
    monkeypatch.setattr(cpu, "cpu_kind", lambda flags=None: "amx")
    assert speed_options(recipe, "cpu") == {"channels_last": True}
    assert speed_options(FinetuneParams(total_iter=1, compile="auto"), "cpu") == {}


def _model(opt: dict[str, Any], **speed: Any) -> Any:
    from basicsr.models import build_model

    opt = {**opt, "cxrsr": {**opt["cxrsr"], SPEED_OPTION: speed}}
    torch.manual_seed(0)
    return build_model(opt)


def test_speed_up_changes_the_step_networks_not_the_ema_nor_what_is_saved(
    train_data: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    opt = tiny_options(train_data, tmp_path)
    plain = _model(opt)
    fast = _model(opt, channels_last=True, compile=True, compile_backend="eager")
    step_nets = (fast.net_g, fast.net_d)
    for net in step_nets:
        assert net._compiled_call_impl is not None  # compiled in place: no _orig_mod wrapper
        convs = [p for p in net.parameters() if p.dim() == 4]
        assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
        assert not all(p.is_contiguous() for p in convs)
    assert fast.net_g_ema._compiled_call_impl is None
    assert all(p.is_contiguous() for p in fast.net_g_ema.parameters())
    assert plain.net_g._compiled_call_impl is None
    for label in ("net_g", "net_d", "net_g_ema"):
        saved = checkpoints.network_dict([getattr(fast, label)], ["params"])["params"]
        expected = getattr(plain, label).state_dict()
        assert list(saved) == list(expected)
        assert all(v.is_contiguous() and torch.equal(v, expected[k]) for k, v in saved.items())

    from basicsr.data import build_dataset

    dataset = build_dataset(opt["datasets"]["train"])
    batch = torch.utils.data.default_collate([dataset[0]])
    fast.feed_data(batch)
    for name in ("lq", "gt", "gt_usm"):
        tensor = getattr(fast, name)
        assert tensor.is_contiguous(memory_format=torch.channels_last), name
        assert not tensor.is_contiguous(), name  # a 3-channel image really changed layout


def _trained(data: Path, root: Path, **switches: Any) -> tuple[dict, pd.DataFrame, dict]:
    """The exported generator, the losses of each iteration and the model card of a short
    tiny run with ``switches``."""
    result = T.train(tiny_options(data, root / "exp", **SHORT, **switches), **outputs(root))
    state = torch.load(result.generator_path, weights_only=True)["params_ema"]
    card = json.loads(Path(result.model_card_path).read_text())
    return state, T.loss_log(result.loss_csv)[list(GAN_LOG_KEYS)], card


def _assert_same_training(
    fast: tuple[dict, pd.DataFrame, dict], plain: tuple[dict, pd.DataFrame, dict]
) -> None:
    (state, losses, card), (state0, losses0, card0) = fast, plain
    assert list(state) == list(state0)  # the plain generator's keys
    assert all(v.is_contiguous() for v in state.values())
    for key, value in state.items():
        torch.testing.assert_close(value, state0[key], atol=1e-4, rtol=0, msg=key)
    assert np.allclose(losses.to_numpy(), losses0.to_numpy(), atol=1e-5, rtol=0, equal_nan=True)
    assert card["options_sha256"] == card0["options_sha256"]
    assert SPEED_OPTION not in card0


def test_channels_last_trains_the_same_weights(train_data: Path, tmp_path: Path) -> None:  # noqa: F811
    plain = _trained(train_data, tmp_path / "plain")
    fast = _trained(train_data, tmp_path / "channels_last", channels_last=True)
    _assert_same_training(fast, plain)
    assert fast[2][SPEED_OPTION] == {"channels_last": True}


@pytest.mark.slow
def test_compiled_training_exports_the_plain_generator(train_data: Path, tmp_path: Path) -> None:  # noqa: F811
    """torch.compile (inductor, which compiles C++ here) on CPU: about a minute on 2 cores."""
    plain = _trained(train_data, tmp_path / "plain")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    fast = _trained(train_data, tmp_path / "compiled", compile=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it did compile
    _assert_same_training(fast, plain)
    assert fast[2][SPEED_OPTION] == {"compile": True}


@pytest.mark.slow
def test_channels_last_before_ddp_wraps(train_data: Path, tmp_path: Path) -> None:  # noqa: F811
    """Two gloo processes: the networks are channels_last before DDP lays out its gradient
    buckets, so torch does not warn that the gradients' strides differ from them."""
    proc, card = run_two_gloo_processes(train_data, tmp_path, channels_last=True)
    assert "Grad strides do not match bucket view strides" not in proc.stderr
    assert card["world_size"] == 2 and card[SPEED_OPTION] == {"channels_last": True}


def test_step_overheads_fused_adam_foreach_ema_and_usm_only_where_read(
    train_data: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """What a step does beside the networks: Adam fused, the EMA update over all tensors at
    once (the same numbers as basicsr's per-tensor loop), and the sharpened HR computed only
    for a step that reads it."""
    from basicsr.data import build_dataset

    from cxrsr_utils.sr.upstream import USMSharp

    gan = _model(tiny_options(train_data, tmp_path / "gan"))
    assert all(g["fused"] for o in (gan.optimizer_g, gan.optimizer_d) for g in o.param_groups)

    with torch.no_grad():
        for p in gan.net_g.parameters():
            p.add_(torch.randn_like(p))
    g = dict(gan.net_g.named_parameters())
    expected = {
        k: v.detach().clone().mul_(0.9).add_(g[k].detach(), alpha=1 - 0.9)
        for k, v in gan.net_g_ema.named_parameters()
    }
    gan.model_ema(decay=0.9)
    for k, v in gan.net_g_ema.named_parameters():
        assert torch.equal(v, expected[k]), k

    dataset = build_dataset(gan.opt["datasets"]["train"])
    batch = torch.utils.data.default_collate([dataset[0]])
    gan.feed_data(batch)
    assert torch.equal(gan.gt_usm, USMSharp()(gan.gt)) and not torch.equal(gan.gt_usm, gan.gt)
    l1 = _model(tiny_options(train_data, tmp_path / "l1", variant="l1"))
    assert not l1.uses_usm and l1.opt["l1_gt_usm"] is False
    l1.feed_data(batch)
    assert l1.gt_usm is l1.gt  # never sharpened: the L1-only step compares with the plain HR
