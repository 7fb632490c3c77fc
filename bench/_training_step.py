"""One configuration of ``bench/training.py``: build the paper's model, time its iterations.

Everything here runs inside the fresh process :func:`run_config` starts for one
configuration (see ``bench/training.py`` for what is timed and why): the machine's facts, the
training images and stand-in weights, the paper's options at the benchmark's size, the model
(ours or realesrgan's, with realesrgan's two CPU shims), the timed iterations and the parts of
the step timed alone.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import in_fresh_process, peak_rss_mb

PAPER_ITERS, PAPER_BATCH, PAPER_GT = 6480, 10, 256
CHECKPOINT_FREQ = 500  # the paper profile's save_checkpoint_freq
LOADER_WORKERS = 4  # paper.yaml's finetune.num_workers: data loading runs beside the step
# A configuration's speed switches (cxrsr_utils.finetune.speed); the model applies them.
SPEED_KEYS = ("channels_last", "compile", "compile_mode", "cudnn_benchmark")


def cpu_info() -> dict[str, Any]:
    """CPU model, its kind (cxrsr_utils.core.cpu.cpu_kind), core count and whether bf16 is
    native (avx512_bf16 or amx_bf16)."""
    from cxrsr_utils.core import cpu

    flags = cpu.isa_flags()
    return {
        "cpu": cpu.cpu_model(),
        "cpu_kind": cpu.cpu_kind(),
        "cpus": os.cpu_count(),
        "native_bf16": cpu.native_bf16(),
        "bf16_flags": [f for f in ("avx512_bf16", "amx_bf16") if flags.get(f)],
        "load_average_at_start": os.getloadavg()[0],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
    }


def gpu_info() -> dict[str, Any]:
    import torch

    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "cuda": torch.version.cuda,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
    }


def prepare(folder: Path, images: list[Path], n_images: int) -> dict[str, str]:
    """Training images (the mirror's NIH PNGs at full size, as the paper's originals), their
    meta_info list, and a mirror with the stand-in discriminator and VGG19."""
    import shutil

    from cxrsr_utils.sr.networks import write_standin_weights

    data = folder / "data"
    data.mkdir(parents=True)
    chosen = images[:n_images]
    if len(chosen) < n_images:
        raise SystemExit(f"Need {n_images} training images, found {len(chosen)}.")
    for path in chosen:
        shutil.copy2(path, data / path.name)
    (data / "meta_info.txt").write_text("".join(f"{p.name}\n" for p in chosen))
    write_standin_weights(folder / "mirror")
    return {
        "data": str(data),
        "mirror": str(folder / "mirror"),
        "cache": str(folder / "cache"),
        "root": str(folder),
        "n_images": str(n_images),
    }


def build_opt(env: dict[str, str], device: str, gt_size: int, batch: int) -> dict[str, Any]:
    """The paper's options at this size, from stand-in sources (see module doc)."""
    from cxrsr_utils.core.params_networks import FinetuneParams
    from cxrsr_utils.external import sources
    from cxrsr_utils.finetune.options import build_options

    # The paper's recipe (FinetuneParams' defaults) at this size, generator from scratch.
    recipe = FinetuneParams(
        total_iter=PAPER_ITERS,
        batch_size=batch,
        gt_size=gt_size,
        queue_size=batch * 4,
        generator_init="scratch",
        num_workers=0,
    )
    with sources.allow_unverified_for_tests():
        return build_options(
            recipe,
            name="bench",
            dataroot_gt=env["data"],
            meta_info=Path(env["data"]) / "meta_info.txt",
            experiments_root=Path(env["root"]) / "exp",
            variant="paper",
            seed=0,
            device=device,
            use_tb_logger=False,
            download=False,
            dataset_enlarge_ratio=-(-batch // int(env["n_images"])),
        )  # at least one batch


@contextlib.contextmanager
def realesrgan_on_cpu() -> Iterator[None]:
    """realesrgan's model on a CPU: ``.cuda()`` is a no-op and filter2D gets contiguous input."""
    import torch
    from realesrgan.models import realesrgan_model as rm

    saved = (torch.nn.Module.cuda, torch.Tensor.cuda, rm.filter2D)
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    rm.filter2D = lambda img, kernel: saved[2](img.contiguous(), kernel)
    try:
        yield
    finally:
        torch.nn.Module.cuda, torch.Tensor.cuda, rm.filter2D = saved


def make_model(opt: dict[str, Any], config: dict[str, Any]) -> Any:
    """basicsr's build_model for our model or realesrgan's, with the configuration applied:
    ours takes the speed switches through its options, as training does; realesrgan's model
    gets them from the same function (cxrsr_utils.finetune.speed.speed_up)."""
    from basicsr.models import build_model

    from cxrsr_utils.finetune import speed as finetune_speed
    from cxrsr_utils.finetune.model import vgg_weights

    opt = {**opt, "cxrsr": {**opt["cxrsr"]}}
    speed = {k: config[k] for k in SPEED_KEYS if config.get(k)}
    if config["engine"] == "realesrgan":
        opt["model_type"] = "RealESRGANModel"
    else:
        if config.get("amp") == "bf16":
            opt["cxrsr"]["autocast"] = "bf16"  # the training code's own bf16 path
        opt["cxrsr"][finetune_speed.SPEED_OPTION] = speed
    with vgg_weights(opt["path"]["vgg19"]):  # realesrgan's model does not set it
        model = build_model(opt)
    if config["engine"] == "realesrgan":
        finetune_speed.speed_up(model, speed)
    return model


def _amp(config: dict[str, Any], device: str) -> contextlib.AbstractContextManager:
    """fp16 autocast around a step (bench only: our training has no GradScaler, so this times
    fp16 arithmetic without the loss scaling that training in fp16 would need)."""
    import torch

    if config.get("amp") == "fp16":
        return torch.autocast(device_type=device, dtype=torch.float16)
    return contextlib.nullcontext()


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any], device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def timed_iterations(
    model: Any, loader: Any, config: dict[str, Any], device: str, warmup: int, reps: int
) -> dict[str, Any]:
    """Warm-up iterations, then ``reps`` timed ones; medians of each phase, in seconds."""
    batches = iter(loader)
    times: dict[str, list[float]] = {"data_s": [], "degrade_s": [], "step_s": []}
    first, every = None, []
    for it in range(1, warmup + reps + 1):
        t0 = time.perf_counter()
        batch = next(batches)
        data_s = time.perf_counter() - t0
        degrade_s = _timed(lambda b=batch: model.feed_data(b), device)
        with _amp(config, device):
            step_s = _timed(lambda i=it: model.optimize_parameters(i), device)
        every.append(degrade_s + step_s)
        if first is None:
            first = data_s + degrade_s + step_s
        if it > warmup:
            for key, value in (("data_s", data_s), ("degrade_s", degrade_s), ("step_s", step_s)):
                times[key].append(value)
    out = {k: statistics.median(v) for k, v in times.items()}
    out["iteration_s"] = out["degrade_s"] + out["step_s"]
    out["first_iteration_s"] = first
    out["step_spread_s"] = [min(times["step_s"]), max(times["step_s"])]
    out["every_iteration_s"] = every  # warm-up included: shows compilation and re-compilation
    return out


def components(model: Any, config: dict[str, Any], device: str, reps: int) -> dict[str, float]:
    """Each part of the step alone on the current batch (median of ``reps``), in seconds."""
    import torch

    g, d = model.net_g, model.net_d
    out = g(model.lq).detach()

    def gen() -> None:
        model.cri_pix(g(model.lq), model.gt_usm).backward()

    def vgg() -> None:
        o = out.clone().requires_grad_()
        model.cri_perceptual(o, model.gt_usm)[0].backward()

    def disc() -> None:
        o = out.clone().requires_grad_()
        for p in d.parameters():
            p.requires_grad = False
        model.cri_gan(d(o), True, is_disc=False).backward()  # the generator's GAN loss
        for p in d.parameters():
            p.requires_grad = True
        model.cri_gan(d(model.gt), True, is_disc=True).backward()
        model.cri_gan(d(out.clone()), False, is_disc=True).backward()

    def adam() -> None:
        model.optimizer_g.step()
        model.optimizer_d.step()

    def some_grads() -> None:  # Adam skips parameters without a gradient
        for p in [*g.parameters(), *d.parameters()]:
            p.grad = torch.full_like(p, 1e-3)

    parts = {
        "generator fwd+bwd": gen,
        "VGG19 perceptual fwd+bwd": vgg,
        "discriminator (G's GAN loss + D real/fake)": disc,
        "Adam steps (G and D)": adam,
        "EMA update": lambda: model.model_ema(decay=0.999),
    }
    bf16 = config.get("amp") == "bf16"
    result = {}
    for name, fn in parts.items():
        samples = []
        for _ in range(reps + 1):  # the first one warms up
            model.optimizer_g.zero_grad(set_to_none=True)
            model.optimizer_d.zero_grad(set_to_none=True)
            if fn is adam:
                some_grads()
            with (
                _amp(config, device),
                torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16),
            ):
                samples.append(_timed(fn, device))
        result[name] = statistics.median(samples[1:])
    return result


def run_one(env: dict[str, str], config: dict[str, Any], settings: dict[str, Any]) -> dict:
    """Build, time and break down one configuration (in this process)."""
    import torch

    os.environ.update(CXRSR_MIRROR=env["mirror"], CXRSR_CACHE=env["cache"])
    device = settings["device"]
    torch.set_num_threads(os.cpu_count() or 1)
    from cxrsr_utils.sr import upstream as sr_backend  # noqa: F401  (the basicsr shim, before realesrgan)

    shim = (
        realesrgan_on_cpu()
        if (config["engine"] == "realesrgan" and device == "cpu")
        else (contextlib.nullcontext())
    )
    with shim:
        from basicsr.data import build_dataset

        from cxrsr_utils.finetune import model as finetune_model  # noqa: F401  (registers our model with basicsr)

        torch.manual_seed(0)
        opt = build_opt(env, device, settings["gt_size"], settings["batch"])
        model = make_model(opt, config)
        dataset = build_dataset(opt["datasets"]["train"])
        n = settings["batch"] * (settings["warmup"] + 2 + settings["reps"])
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=settings["batch"],
            num_workers=0,
            drop_last=True,
            sampler=torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=n),
        )
        rss_model = peak_rss_mb()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        warmup = settings["warmup"] + (2 if config.get("compile") else 0)
        row = timed_iterations(model, loader, config, device, warmup, settings["reps"])
        row["peak_rss_mb"], row["rss_after_build_mb"] = peak_rss_mb(), rss_model
        if device == "cuda":
            row["peak_gpu_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
            row["peak_gpu_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
        if not config.get("compile"):
            row["components_s"] = components(model, config, device, settings["parts_reps"])
        if (
            config["engine"] == "cxrsr"
            and not config.get("amp")
            and not config.get("channels_last")
        ):
            model.loop_state = {"epoch_batches": 0}
            row["checkpoint_s"] = _timed(lambda: model.save(0, 1), device)
            from cxrsr_utils.finetune import checkpoints

            row["checkpoint_mb"] = sum(f.stat().st_size for f in checkpoints.files(opt, 1)) / 1e6
    return row


def run_config(env: dict, config: dict, settings: dict, timeout: float) -> dict[str, Any]:
    """One configuration in a fresh process; a row with ``status`` ok / error / timeout."""
    t0 = time.time()
    status, payload = in_fresh_process(run_one, (env, config, settings), timeout=timeout)
    if status == "timeout":
        return {"status": "timeout", "note": f"did not finish within {timeout:.0f} s"}
    if status != "ok":
        return {"status": "error", "note": payload}
    return {"status": "ok", "wall_s": time.time() - t0, **payload}
