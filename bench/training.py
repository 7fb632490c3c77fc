"""One fine-tuning iteration of our training model against realesrgan's own step.

Where does the paper profile's time go, and how fast can its 6480 iterations run? Both models
are built by basicsr's ``build_model`` from one option dict
(``cxrsr_utils.finetune.options.build_options`` with the paper's losses: pretrained
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

This file holds the configurations and the command line; ``_training_step`` builds and times
one configuration in its own process, ``_training_report`` writes the report.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPORTS, nih_folder
from _training_report import (
    CPU_DEFAULT_GT,
    fmt,
    legacy_sections,
    markdown_rows,
    merge,
    section_key,
    summarise,
    write_report,
)
from _training_step import PAPER_BATCH, PAPER_GT, cpu_info, gpu_info, prepare, run_config

# (label, configuration). "realesrgan" = realesrgan's RealESRGANModel step, fp32 as shipped.
CPU_CONFIGS = [
    ("realesrgan step, fp32", {"engine": "realesrgan"}),
    ("ours, fp32", {"engine": "cxrsr"}),
    ("ours, fp32, channels_last", {"engine": "cxrsr", "channels_last": True}),
    ("ours, bf16 autocast", {"engine": "cxrsr", "amp": "bf16"}),
    (
        "ours, bf16 autocast, channels_last",
        {"engine": "cxrsr", "amp": "bf16", "channels_last": True},
    ),
]
# basicsr's train.py sets cudnn.benchmark; our train() with finetune.cudnn_benchmark: both timed.
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


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Sizes and repetitions: the command line's, else the paper's on a GPU, small on a CPU."""
    gpu = args.device == "cuda"
    return {
        "device": args.device,
        "gt_size": args.gt_size or (PAPER_GT if gpu else CPU_DEFAULT_GT),
        "batch": args.batch or (PAPER_BATCH if gpu else 2),
        "warmup": args.warmup or (3 if gpu else 1),
        "reps": args.reps or (10 if gpu else 3),
        "parts_reps": args.parts_reps or (5 if gpu else 2),
    }


def _configs(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    gpu = args.device == "cuda"
    configs = GPU_CONFIGS if (gpu or args.configs == "gpu") else CPU_CONFIGS
    if args.only:
        configs = [c for c in configs if any(o in c[0] for o in args.only)]
    return configs


def _run_all(
    args: argparse.Namespace, settings: dict[str, Any], machine: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each configuration in its own process, in order; the rows so far go to ``--json``."""
    gpu = args.device == "cuda"
    images = sorted(Path(args.images).glob("*.png"))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cxrsr-bench-") as tmp:
        env = prepare(Path(tmp), images, args.n_images)
        for label, config in _configs(args):
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
                f"[bench] {label}: {row['status']} {fmt(row.get('iteration_s'))} s/iteration",
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
    return rows


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every configuration of ``args.device`` and return the result for the report."""
    import importlib.metadata as md

    import torch

    gpu = args.device == "cuda"
    settings = _settings(args)
    machine = cpu_info()
    if gpu:
        machine.update(gpu_info())
    rows = _run_all(args, settings, machine)
    summarise(rows, settings)
    notes = []
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--gt-size", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--reps", type=int)
    parser.add_argument("--parts-reps", type=int)
    parser.add_argument("--n-images", type=int, default=8)
    parser.add_argument("--images", default=str(nih_folder()))
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
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    path = REPORTS / "training.json"
    report = legacy_sections(json.loads(path.read_text()) if path.is_file() else {})
    if args.merge:
        merge(report, [json.loads(Path(f).read_text()) for f in args.merge], args.note or [])
    else:
        result = measure(args)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
            print(markdown_rows(result))
            return
        report[section_key(result)] = result
    write_report(report)
    print((REPORTS / "training.md").read_text())


if __name__ == "__main__":
    main()
