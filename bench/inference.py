"""The inference engine on a real radiograph: tiling error, precision, time and memory, and
parity with realesrgan's own ``RealESRGANer``.

Questions this answers for the study and for the ``cxrsr upscale`` command:

1. How far is tiled output from untiled output for RRDBNet, as a function of ``tile_pad``
   (its receptive field is wider than any practical pad, so tiling is never exact)?
2. What do bf16 autocast and tiling cost or save in time and peak memory on this CPU?
3. Does our engine reproduce ``RealESRGANer.enhance`` on an 8-bit gray image (with
   ``gray="luma"``, what RealESRGANer does), and how do the two compare in time?

Every configuration runs in a fresh process so that its peak resident memory (``ru_maxrss``)
is its own; "peak over model" is that peak minus the process's peak after loading the network.
Input: one NIH radiograph from the mirror, resized to HR 512x512, LR by bicubic x4 (128x128);
the last rows use it at its full 1024x1024 (LR 256x256, the paper profile's evaluation size).
Output: ``reports/bench/inference.{md,json}``. Run: ``make bench``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HR, SCALE = 512, 4
TILE = 64
PADS = (4, 10, 16, 32)
# A larger input shows how memory grows untiled and stays bounded tiled (the CLI's case).
HR_LARGE, TILE_LARGE, PAD_LARGE = 1024, 128, 32


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _child(config: dict, lr8: np.ndarray, queue: mp.Queue) -> None:
    """Run one configuration; put (seconds, peak MB, peak over model MB, uint8 output)."""
    import torch

    from cxrsr_utils import models
    from cxrsr_utils.infer import InferOptions, upscale_radiograph
    from cxrsr_utils.io import Radiograph

    torch.set_num_threads(os.cpu_count() or 1)
    net, _ = models.load_pretrained_generator(download=False)
    net.eval()
    base = _rss_mb()
    if config["engine"] == "RealESRGANer":
        from cxrsr_utils.sr_backend import RealESRGANer

        # RealESRGANer only loads weights from a file: hand it the converted state dict.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "x4plus.pth"
            torch.save({"params_ema": net.state_dict()}, path)
            upsampler = RealESRGANer(
                scale=SCALE,
                model_path=str(path),
                model=models.build_generator(),
                tile=config["tile"],
                tile_pad=config["tile_pad"],
                pre_pad=10,
                half=False,
                device=torch.device("cpu"),
            )
        t0 = time.perf_counter()
        out, _ = upsampler.enhance(lr8, outscale=SCALE)
        seconds = time.perf_counter() - t0
    else:
        options = InferOptions(
            tile=config["tile"],
            tile_pad=config["tile_pad"],
            pre_pad=10,
            batch_size=1,
            precision=config["precision"],
            gray=config["gray"],
            progress=False,
        )
        t0 = time.perf_counter()
        out = upscale_radiograph(Radiograph(lr8, 255, Path("bench.png")), net, options).pixels
        seconds = time.perf_counter() - t0
    peak = _rss_mb()
    queue.put((seconds, peak, peak - base, out))


def run_config(config: dict, lr8: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(config, lr8, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"benchmark configuration {config} failed (exit {proc.exitcode})")
    return result


def main() -> None:
    import pandas as pd

    from cxrsr_utils import io, metrics
    from cxrsr_utils.report import markdown_table

    mirror = Path(os.environ.get("CXRSR_MIRROR", ROOT.parent / "shared" / "mirror"))
    files = sorted((mirror / "data" / "nih-sample" / "images").glob("*.png"))
    if not files:
        raise SystemExit(f"No NIH images under {mirror}; set CXRSR_MIRROR.")
    original = io.read_radiograph(files[0]).as_float()
    inputs = {}  # name -> (LR uint8, HR uint8)
    for name, side in (("small", HR), ("large", HR_LARGE)):
        hr = io.resize(original, (side, side)).clip(0, 1)
        lr = io.resize(hr, (side // SCALE, side // SCALE)).clip(0, 1)
        inputs[name] = (io.to_pixels(lr, 255), io.to_pixels(hr, 255))

    # (label, configuration, label of the run it is compared with)
    ours = {
        "engine": "cxrsr",
        "precision": "fp32",
        "gray": "mean",
        "tile": 0,
        "tile_pad": 0,
        "input": "small",
    }
    luma = {**ours, "gray": "luma"}
    large = {**ours, "input": "large"}
    theirs = {"engine": "RealESRGANer", "input": "small"}
    big = f"LR {HR_LARGE // SCALE}:"
    configs = [
        ("untiled fp32", ours, "untiled fp32"),
        ("untiled bf16", {**ours, "precision": "bf16"}, "untiled fp32"),
        *[
            (f"tile {TILE} pad {p} fp32", {**ours, "tile": TILE, "tile_pad": p}, "untiled fp32")
            for p in PADS
        ],
        ("untiled fp32, gray=luma", luma, "untiled fp32, gray=luma"),
        ("RealESRGANer untiled", {**theirs, "tile": 0, "tile_pad": 0}, "untiled fp32, gray=luma"),
        (
            f"tile {TILE} pad 10 fp32, gray=luma",
            {**luma, "tile": TILE, "tile_pad": 10},
            "untiled fp32, gray=luma",
        ),
        (
            f"RealESRGANer tile {TILE} pad 10",
            {**theirs, "tile": TILE, "tile_pad": 10},
            "untiled fp32, gray=luma",
        ),
        (f"{big} untiled fp32", large, f"{big} untiled fp32"),
        (
            f"{big} tile {TILE_LARGE} pad {PAD_LARGE} fp32",
            {**large, "tile": TILE_LARGE, "tile_pad": PAD_LARGE},
            f"{big} untiled fp32",
        ),
        (
            f"{big} tile {TILE_LARGE} pad {PAD_LARGE} bf16",
            {**large, "tile": TILE_LARGE, "tile_pad": PAD_LARGE, "precision": "bf16"},
            f"{big} untiled fp32",
        ),
    ]
    from cxrsr_utils import cpu

    # Emulated bf16 is ~160x slower than fp32: such a configuration would run for hours.
    skipped = [
        label
        for label, config, _ in configs
        if config.get("precision") == "bf16" and not cpu.native_bf16()
    ]
    configs = [c for c in configs if c[0] not in skipped]
    results = {}
    for label, config, _ in configs:
        print(f"[bench] {label} ...", flush=True)
        results[label] = run_config(config, inputs[config["input"]][0])

    rows = []
    for label, config, reference in configs:
        seconds, peak, over, out = results[label]
        ref = results[reference][3]
        diff = np.abs(out.astype(np.int32) - ref.astype(np.int32))
        rows.append(
            {
                "configuration": label,
                "seconds": round(seconds, 2),
                "peak RSS (MB)": round(peak),
                "peak over model (MB)": round(over),
                "compared with": reference,
                "max |diff| (grey levels)": int(diff.max()),
                "pixels differing": f"{100 * float((diff > 0).mean()):.2f}%",
                "PSNR vs that (dB)": round(metrics.psnr(out, ref, data_range=255), 1),
                "PSNR vs HR (dB)": round(
                    metrics.psnr(out, inputs[config["input"]][1], data_range=255), 2
                ),
            }
        )
    table = pd.DataFrame(rows)
    meta = {
        "image": files[0].name,
        "hr": HR,
        "lr": HR // SCALE,
        "scale": SCALE,
        "machine": f"{cpu.isa_label()}, {os.cpu_count()} CPUs",
        "cpu": cpu.describe(),
        "torch_threads": os.cpu_count(),
        "skipped": skipped,
    }
    note = (
        f"\n\nNot run on this CPU (bf16 is emulated here, about "
        f"{cpu.EMULATED_BF16_SLOWDOWN}x slower than fp32): {', '.join(skipped)}."
        if skipped
        else ""
    )
    out_dir = ROOT / "reports" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    io.write_text(out_dir / "inference.json", json.dumps({"rows": rows, **meta}, indent=2))
    io.write_text(
        out_dir / "inference.md",
        "# Inference engine: tiling, precision, memory, parity with RealESRGANer\n\n"
        f"Pretrained RealESRGAN_x4plus (offline ncnn conversion) on NIH `{files[0].name}`, HR "
        f"{HR}x{HR}, LR bicubic x{SCALE} ({HR // SCALE}x{HR // SCALE}), 8-bit (rows 'LR "
        f"{HR_LARGE // SCALE}': HR {HR_LARGE}x{HR_LARGE}, the image's full size); "
        f"{meta['machine']}; each configuration in a fresh process; batch 1, pre_pad 10. "
        "Differences are in 8-bit grey levels of the output."
        + note
        + "\n\n"
        + markdown_table(table),
    )
    print(markdown_table(table))


if __name__ == "__main__":
    main()
