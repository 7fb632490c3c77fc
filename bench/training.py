"""One fine-tuning iteration of our training model against realesrgan's own step.

Where does the paper profile's time go, and how fast can its 6480 iterations run? Both models
are built by basicsr's ``build_model`` from one option dict
(``cxrsr_utils.finetune_options.build_options`` with the paper's losses: pretrained
discriminator, VGG19 perceptual loss with the paper's layer weights, GAN loss, EMA 0.999,
USM-sharpened HR); only ``model_type`` differs:
``CxrRealESRGANModel`` (ours: our degradation, device-agnostic, optional autocast) or
realesrgan's ``RealESRGANModel``. An iteration is what the training loop does: a batch from
the data loader (``RealESRGANDataset``, one process), ``feed_data`` (degradation synthesis,
crop, training-pair pool, USM) and ``optimize_parameters`` (generator, perceptual and GAN
losses, discriminator step, EMA). After the timed iterations, the parts of the step are timed
alone on the last batch: generator forward + backward (L1), VGG19 perceptual loss forward +
backward, the discriminator (its GAN-loss pass for the generator and its own real + fake
step), the two Adam steps, EMA.

realesrgan's model hard-codes ``.cuda()``; on a CPU this benchmark maps ``.cuda()`` to a
no-op and hands ``filter2D`` a contiguous tensor (DiffJPEG's output is not, on CPU): those
two shims, and nothing else, make its own step run here. On a GPU it runs unchanged.

The discriminator and VGG19 are random-weight stand-ins with the real architectures and file
names, and the generator is a randomly initialised RealESRGAN_x4plus RRDBNet: weight values do
not change the time of a step. Each configuration runs in a fresh process (its own peak
memory; ``torch.compile`` and its caches stay inside it). Output:
``reports/bench/training.{json,md}``. Run ``make bench`` (CPU); on a GPU machine
``python bench/training.py --device cuda --json <file>`` and merge that file here with
``python bench/training.py --merge <file>`` (this keeps the CPU rows and adds the GPU ones).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAPER_ITERS, PAPER_BATCH, PAPER_GT = 6480, 10, 256
CHECKPOINT_FREQ = 500  # the paper profile's save_checkpoint_freq
REPORTS = ROOT / "reports" / "bench"

# (label, configuration). "realesrgan" = realesrgan's RealESRGANModel step, fp32 as shipped.
CPU_CONFIGS = [
    ("realesrgan step, fp32", {"engine": "realesrgan"}),
    ("ours, fp32", {"engine": "cxrsr"}),
    ("ours, fp32, channels_last", {"engine": "cxrsr", "channels_last": True}),
    ("ours, bf16 autocast", {"engine": "cxrsr", "amp": "bf16"}),
]
# basicsr's train.py sets cudnn.benchmark; our train() does not (yet): both are timed.
_FAST = {"engine": "cxrsr", "amp": "bf16", "channels_last": True, "cudnn_benchmark": True}
GPU_CONFIGS = [  # the most telling first: a run cut short keeps them
    (
        "realesrgan step, fp32, cudnn.benchmark (as basicsr's train.py)",
        {"engine": "realesrgan", "cudnn_benchmark": True},
    ),
    ("ours, fp32", {"engine": "cxrsr"}),
    ("ours, bf16 autocast", {"engine": "cxrsr", "amp": "bf16"}),
    ("ours, bf16, channels_last, cudnn.benchmark", _FAST),
    ("ours, bf16, channels_last, cudnn.benchmark, torch.compile", {**_FAST, "compile": True}),
    ("ours, fp32, cudnn.benchmark", {"engine": "cxrsr", "cudnn_benchmark": True}),
    ("ours, fp16 autocast (no loss scaling)", {"engine": "cxrsr", "amp": "fp16"}),
    (
        "ours, bf16, channels_last, cudnn.benchmark, torch.compile reduce-overhead (CUDA graphs)",
        {**_FAST, "compile": True, "compile_mode": "reduce-overhead"},
    ),
    (
        "ours, fp32, channels_last, cudnn.benchmark, torch.compile",
        {"engine": "cxrsr", "channels_last": True, "cudnn_benchmark": True, "compile": True},
    ),
]
LOADER_WORKERS = 4  # paper.yaml's finetune.num_workers: data loading runs beside the step


# --------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------


def cpu_info() -> dict[str, Any]:
    """CPU model, core count and whether bf16 is native (avx512_bf16 or amx_bf16)."""
    from cxrsr_utils import cpu

    flags = cpu.isa_flags()
    return {
        "cpu": cpu.cpu_model(),
        "cpus": os.cpu_count(),
        "native_bf16": cpu.native_bf16(),
        "bf16_flags": [f for f in ("avx512_bf16", "amx_bf16") if flags.get(f)],
        "load_average_at_start": os.getloadavg()[0],
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


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def prepare(folder: Path, images: list[Path], n_images: int) -> dict[str, str]:
    """Training images (the mirror's NIH PNGs at full size, as the paper's originals), their
    meta_info list, and a mirror with the stand-in discriminator and VGG19."""
    import shutil

    from cxrsr_utils.models import write_standin_weights

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
    from cxrsr_utils import sources
    from cxrsr_utils.finetune_options import build_options
    from cxrsr_utils.params import FinetuneParams

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


# --------------------------------------------------------------------------------------------
# One configuration, in its own process
# --------------------------------------------------------------------------------------------


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
    """basicsr's build_model for our model or realesrgan's, with the configuration applied."""
    import torch
    from basicsr.models import build_model

    from cxrsr_utils.finetune_model import vgg_weights

    opt = {**opt, "cxrsr": {**opt["cxrsr"]}}
    if config["engine"] == "realesrgan":
        opt["model_type"] = "RealESRGANModel"
    elif config.get("amp") == "bf16":
        opt["cxrsr"]["autocast"] = "bf16"  # the training code's own bf16 path
    with vgg_weights(opt["path"]["vgg19"]):  # realesrgan's model does not set it
        model = build_model(opt)
    nets = [model.net_g, model.net_d, model.cri_perceptual.vgg]
    if config.get("channels_last"):
        for net in nets:
            net.to(memory_format=torch.channels_last)
    if config.get("compile"):
        for net in nets:
            # In place: parameter names (EMA, checkpoints) stay as they are.
            net.compile(mode=config.get("compile_mode"))
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


def _feed(model: Any, batch: dict[str, Any], config: dict[str, Any]) -> None:
    import torch

    model.feed_data(batch)
    if config.get("channels_last"):
        for name in ("lq", "gt", "gt_usm"):
            setattr(model, name, getattr(model, name).contiguous(memory_format=torch.channels_last))


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
        degrade_s = _timed(lambda b=batch: _feed(model, b, config), device)
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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def run_one(env: dict[str, str], config: dict[str, Any], settings: dict[str, Any]) -> dict:
    """Build, time and break down one configuration (in this process)."""
    import torch

    os.environ.update(CXRSR_MIRROR=env["mirror"], CXRSR_CACHE=env["cache"])
    device = settings["device"]
    torch.set_num_threads(os.cpu_count() or 1)
    torch.backends.cudnn.benchmark = bool(config.get("cudnn_benchmark"))
    from cxrsr_utils import sr_backend  # noqa: F401  (the basicsr shim, before realesrgan)

    shim = (
        realesrgan_on_cpu()
        if (config["engine"] == "realesrgan" and device == "cpu")
        else (contextlib.nullcontext())
    )
    with shim:
        from basicsr.data import build_dataset

        from cxrsr_utils import finetune_model  # noqa: F401  (registers our model with basicsr)

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
        rss_model = _peak_rss_mb()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        warmup = settings["warmup"] + (2 if config.get("compile") else 0)
        row = timed_iterations(model, loader, config, device, warmup, settings["reps"])
        row["peak_rss_mb"], row["rss_after_build_mb"] = _peak_rss_mb(), rss_model
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
            from cxrsr_utils import checkpoints

            row["checkpoint_mb"] = sum(f.stat().st_size for f in checkpoints.files(opt, 1)) / 1e6
    return row


def _child(env: dict, config: dict, settings: dict, queue: Any) -> None:
    try:
        queue.put(("ok", run_one(env, config, settings)))
    except BaseException as exc:  # report, do not hang the parent
        import traceback

        queue.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}"))


def run_config(env: dict, config: dict, settings: dict, timeout: float) -> dict[str, Any]:
    """One configuration in a fresh process; a row with ``status`` ok / error / timeout."""
    import queue as queue_module

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_child, args=(env, config, settings, results))
    t0 = time.time()
    proc.start()
    try:
        status, payload = results.get(timeout=timeout)
    except queue_module.Empty:
        proc.terminate()
        proc.join()
        return {"status": "timeout", "note": f"did not finish within {timeout:.0f} s"}
    proc.join()
    if status != "ok":
        return {"status": "error", "note": payload}
    return {"status": "ok", "wall_s": time.time() - t0, **payload}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def summarise(rows: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """Speed-up over realesrgan's step and the projection to the paper's 6480 iterations."""
    base = next(
        (r for r in rows if r["label"].startswith("realesrgan") and r["status"] == "ok"), None
    )
    scale = PAPER_BATCH / settings["batch"]
    for row in rows:
        if row["status"] != "ok":
            continue
        if base:
            row["speedup_vs_realesrgan"] = base["iteration_s"] / row["iteration_s"]
        # Data loading runs in LOADER_WORKERS processes beside the step; it only counts when
        # those cannot keep up.
        per_iter = max(row["iteration_s"], row["data_s"] / LOADER_WORKERS)
        minutes = PAPER_ITERS * per_iter / 60
        if settings["gt_size"] == PAPER_GT and settings["batch"] == PAPER_BATCH:
            row["projected_6480_min"] = minutes
            if "checkpoint_s" in row:
                row["projected_checkpoints_min"] = (
                    (PAPER_ITERS // CHECKPOINT_FREQ + 1) * row["checkpoint_s"] / 60
                )
        else:  # a rough bound only: small sizes use the machine less well than large ones
            row["projected_6480_min_if_linear"] = (
                minutes * scale * (PAPER_GT / settings["gt_size"]) ** 2
            )


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_rows(result: dict[str, Any]) -> str:
    """The main table and the per-part table of one device's result."""
    gpu = result["settings"]["device"] == "cuda"
    head = [
        "configuration",
        "data load, 1 process (s)",
        "degradation (s)",
        "step (s) [min–max]",
        "iteration (s)",
        "vs realesrgan step",
        "first iteration (s)",
        "peak GPU alloc (MiB)" if gpu else "peak RSS (MB)",
        "6480 iterations (min)" if gpu else "6480 at paper size, if linear (h)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    parts_rows = []
    for row in result["rows"]:
        if row["status"] != "ok":
            lines.append(
                f"| {row['label']} | {row['status']}: "
                f"{row.get('note', '').splitlines()[0][:120]} |" + " |" * 7
            )
            continue
        speed = row.get("speedup_vs_realesrgan")
        memory = row.get("peak_gpu_allocated_mib") if gpu else row.get("peak_rss_mb")
        minutes = (
            row.get("projected_6480_min") if gpu else (row["projected_6480_min_if_linear"] / 60)
        )  # hours, on a CPU
        lines.append(
            "| "
            + " | ".join(
                [
                    row["label"],
                    _fmt(row["data_s"]),
                    _fmt(row["degrade_s"]),
                    f"{_fmt(row['step_s'])} [{_fmt(row['step_spread_s'][0])}–"
                    f"{_fmt(row['step_spread_s'][1])}]",
                    _fmt(row["iteration_s"]),
                    f"{speed:.2f}×" if speed else "–",
                    _fmt(row["first_iteration_s"], 2),
                    _fmt(memory, 0),
                    _fmt(minutes, 1),
                ]
            )
            + " |"
        )
        if "components_s" in row:
            parts_rows.append((row["label"], row["components_s"]))
    table = "\n".join(lines)
    saves = [r for r in result["rows"] if r["status"] == "ok" and "checkpoint_s" in r]
    if saves:
        n = PAPER_ITERS // CHECKPOINT_FREQ + 1
        table += (
            f"\n\nOne checkpoint (net_g with its EMA, net_d, training state; each file "
            f"written to a temporary file, loaded back, renamed): "
            f"{saves[0]['checkpoint_s']:.2f} s, {saves[0]['checkpoint_mb']:.0f} MB "
            f"({saves[0]['label']}); the paper profile writes {n} "
            f"({n * saves[0]['checkpoint_s'] / 60:.2f} min), keeping one at a time."
        )
    if parts_rows:
        names = list(parts_rows[0][1])
        table += "\n\nParts of the step, each timed alone on the last batch (seconds):\n\n"
        table += "| configuration | " + " | ".join(names) + " | sum of parts | full step |\n"
        table += "|" + "---|" * (len(names) + 3) + "\n"
        steps = {r["label"]: r["step_s"] for r in result["rows"] if r["status"] == "ok"}
        for label, parts in parts_rows:
            table += (
                f"| {label} | "
                + " | ".join(_fmt(parts[n]) for n in names)
                + f" | {_fmt(sum(parts.values()))} | {_fmt(steps[label])} |\n"
            )
    return table


def write_report(report: dict[str, Any]) -> None:
    """reports/bench/training.{json,md} from the CPU result and, when there is one, the GPU's."""
    from cxrsr_utils.io import write_text

    REPORTS.mkdir(parents=True, exist_ok=True)
    write_text(REPORTS / "training.json", json.dumps(report, indent=1))
    text = [
        "# Fine-tuning speed: our step against realesrgan's own step\n",
        "Written by `bench/training.py` (see its docstring for what is timed and how). One "
        "iteration of the paper's recipe: RealESRGAN_x4plus generator (random init), "
        "UNetDiscriminatorSN and VGG19 as random-weight stand-ins with the real architectures, "
        "perceptual + GAN + L1 losses, EMA 0.999, Real-ESRGAN degradation, the mirror's NIH "
        "radiographs at full size. Times are medians in seconds; 'iteration' = degradation + "
        "step (data loading runs in the loader's worker processes beside it); 'vs realesrgan "
        "step' = realesrgan's iteration time over this one's. Each configuration ran in a "
        "fresh process.\n",
    ]
    for key, title in (("cpu", "CPU"), ("gpu", "GPU")):
        result = report.get(key)
        if not result:
            text.append(f"## {title}\n\n{report.get(key + '_note', 'Not measured.')}\n")
            continue
        text.append(f"## {title}\n\n{describe(result)}\n\n{markdown_rows(result)}\n")
        text.extend(f"- {note}\n" for note in result.get("notes", []))
    write_text(REPORTS / "training.md", "\n".join(text))


def describe(result: dict[str, Any]) -> str:
    """One line naming the machine, the software and the sizes."""
    m, st = result["machine"], result["settings"]
    where = (
        f"{m['gpu']} ({m['gpu_memory_gib']} GiB, CUDA {m['cuda']}, cuDNN TF32 "
        f"{'on' if m['cudnn_tf32'] else 'off'}), host {m['cpu']}"
        if "gpu" in m
        else f"{m['cpu']}, {m['cpus']} cores, native bf16: "
        f"{'yes (' + ', '.join(m['bf16_flags']) + ')' if m['native_bf16'] else 'no'}, "
        f"load average {m['load_average_at_start']:.2f} at the start"
    )
    return (
        f"{where}; torch {result['torch']}, basicsr {result['basicsr']}, realesrgan "
        f"{result['realesrgan']}; gt_size {st['gt_size']}, batch {st['batch']}, "
        f"{st['warmup']} warm-up + {st['reps']} timed iterations, parts timed "
        f"{st['parts_reps']}×; {result['date']}."
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every configuration of ``args.device`` and return the result for the report."""
    import importlib.metadata as md

    import torch

    gpu = args.device == "cuda"
    settings = {
        "device": args.device,
        "gt_size": args.gt_size or (PAPER_GT if gpu else 64),
        "batch": args.batch or (PAPER_BATCH if gpu else 2),
        "warmup": args.warmup or (3 if gpu else 1),
        "reps": args.reps or (10 if gpu else 3),
        "parts_reps": args.parts_reps or (5 if gpu else 2),
    }
    machine = cpu_info()
    if gpu:
        machine.update(gpu_info())
    configs = GPU_CONFIGS if (gpu or args.configs == "gpu") else CPU_CONFIGS
    if args.only:
        configs = [c for c in configs if any(o in c[0] for o in args.only)]
    notes = []
    images = sorted(Path(args.images).glob("*.png"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="cxrsr-bench-") as tmp:
        env = prepare(Path(tmp), images, args.n_images)
        for label, config in configs:
            if config.get("amp") == "bf16" and not gpu and not machine["native_bf16"]:
                rows.append(
                    {
                        "label": label,
                        "config": config,
                        "status": "skipped",
                        "note": "no native bf16 on this CPU (emulated bf16 is ~100x slower)",
                    }
                )
                continue
            timeout = args.compile_timeout if config.get("compile") else args.timeout
            print(f"[bench] {label} ...", flush=True)
            row = {"label": label, "config": config, **run_config(env, config, settings, timeout)}
            print(
                f"[bench] {label}: {row['status']} {_fmt(row.get('iteration_s'))} s/iteration",
                flush=True,
            )
            rows.append(row)
            if args.json:  # what is measured so far survives a later timeout
                Path(args.json).write_text(
                    json.dumps(
                        {"partial": True, "settings": settings, "machine": machine, "rows": rows},
                        indent=1,
                    )
                )
    summarise(rows, settings)
    if not gpu:
        notes.append(
            "torch.compile is not timed on the CPU (compiling the three networks "
            "takes longer than the whole CPU benchmark on 2 cores)."
        )
    return {
        "settings": settings,
        "machine": machine,
        "rows": rows,
        "notes": notes,
        "torch": torch.__version__,
        "basicsr": md.version("basicsr"),
        "realesrgan": md.version("realesrgan"),
        "date": time.strftime("%Y-%m-%d"),
    }


def merge(report: dict[str, Any], results: list[dict[str, Any]], notes: list[str]) -> None:
    """Put device results into the report: the first replaces that device's section, later
    ones measured on the same machine with the same settings add their rows to it."""
    first = results[0]
    key = first["settings"]["device"].replace("cuda", "gpu")
    for more in results[1:]:
        same = more["settings"] == first["settings"] and more["machine"].get("gpu") == first[
            "machine"
        ].get("gpu")
        if not same:
            raise SystemExit("Results to merge differ in machine or settings; merge them apart.")
        known = {r["label"] for r in first["rows"]}
        first["rows"] += [r for r in more["rows"] if r["label"] not in known]
    summarise(first["rows"], first["settings"])
    first["notes"] = list(first.get("notes", [])) + list(notes)
    first["runs"] = len(results)
    report[key] = first


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--gt-size", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--reps", type=int)
    parser.add_argument("--parts-reps", type=int)
    parser.add_argument("--n-images", type=int, default=8)
    parser.add_argument(
        "--images",
        default=str(
            Path(os.environ.get("CXRSR_MIRROR", ROOT.parent / "shared" / "mirror"))
            / "data"
            / "nih-sample"
            / "images"
        ),
    )
    parser.add_argument("--only", nargs="*", help="run the configurations whose label has this")
    parser.add_argument(
        "--configs",
        choices=["cpu", "gpu"],
        help="configuration set (default: "
        "the device's); 'gpu' on a CPU checks the GPU script's code paths",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per configuration")
    parser.add_argument("--compile-timeout", type=float, default=300)
    parser.add_argument("--json", help="write this device's result here instead of reports/")
    parser.add_argument(
        "--merge",
        nargs="+",
        help="add --json results (e.g. from a GPU) to "
        "reports/; later files of one machine and settings add their rows",
    )
    parser.add_argument("--note", nargs="*", help="with --merge: notes for that device's section")
    args = parser.parse_args(argv)
    path = REPORTS / "training.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    if args.merge:
        merge(report, [json.loads(Path(f).read_text()) for f in args.merge], args.note or [])
    else:
        result = measure(args)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
            print(markdown_rows(result))
            return
        report[args.device.replace("cuda", "gpu")] = result
    write_report(report)
    print((REPORTS / "training.md").read_text())


if __name__ == "__main__":
    main()
