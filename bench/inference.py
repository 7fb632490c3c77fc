"""The inference engine on a real radiograph: tiling error, precision, time and memory, and
parity with realesrgan's own ``RealESRGANer``.

Questions this answers for the study and for the command line tool to come:

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
import platform
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
                scale=SCALE, model_path=str(path), model=models.build_generator(),
                tile=config["tile"], tile_pad=config["tile_pad"], pre_pad=10, half=False,
                device=torch.device("cpu"),
            )
        t0 = time.perf_counter()
        out, _ = upsampler.enhance(lr8, outscale=SCALE)
        seconds = time.perf_counter() - t0
    else:
        options = InferOptions(
            tile=config["tile"], tile_pad=config["tile_pad"], pre_pad=10, batch_size=1,
            precision=config["precision"], gray=config["gray"], progress=False,
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


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    import pandas as pd

    from cxrsr_utils import io
    from cxrsr_utils.report import markdown_table

    mirror = Path(os.environ.get("CXRSR_MIRROR", ROOT.parent / "shared" / "mirror"))
    files = sorted((mirror / "data" / "nih-sample" / "images").glob("*.png"))
    if not files:
        raise SystemExit(f"No NIH images under {mirror}; set CXRSR_MIRROR.")
    hr = io.resize(io.read_radiograph(files[0]).as_float(), (HR, HR)).clip(0, 1)
    lr8 = io.to_pixels(io.resize(hr, (HR // SCALE, HR // SCALE)).clip(0, 1), 255)
    hr8 = io.to_pixels(hr, 255)
    hr_large = io.resize(io.read_radiograph(files[0]).as_float(), (HR_LARGE, HR_LARGE)).clip(0, 1)
    lr8_large = io.to_pixels(io.resize(hr_large, (HR_LARGE // SCALE,) * 2).clip(0, 1), 255)
    inputs = {"small": (lr8, hr8), "large": (lr8_large, io.to_pixels(hr_large, 255))}

    ours = {"engine": "cxrsr", "precision": "fp32", "gray": "mean", "tile": 0, "tile_pad": 0}
    configs = [
        ("untiled fp32", ours),
        ("untiled bf16", {**ours, "precision": "bf16"}),
        *[(f"tile {TILE} pad {p} fp32", {**ours, "tile": TILE, "tile_pad": p}) for p in PADS],
        ("untiled fp32, gray=luma", {**ours, "gray": "luma"}),
        ("RealESRGANer untiled", {"engine": "RealESRGANer", "tile": 0, "tile_pad": 0}),
        (f"tile {TILE} pad 10 fp32, gray=luma", {**ours, "gray": "luma", "tile": TILE,
                                                 "tile_pad": 10}),
        (f"RealESRGANer tile {TILE} pad 10", {"engine": "RealESRGANer", "tile": TILE,
                                              "tile_pad": 10}),
        (f"LR {HR_LARGE // SCALE}: untiled fp32", {**ours, "input": "large"}),
        (f"LR {HR_LARGE // SCALE}: tile {TILE_LARGE} pad {PAD_LARGE} fp32",
         {**ours, "input": "large", "tile": TILE_LARGE, "tile_pad": PAD_LARGE}),
        (f"LR {HR_LARGE // SCALE}: tile {TILE_LARGE} pad {PAD_LARGE} bf16",
         {**ours, "input": "large", "tile": TILE_LARGE, "tile_pad": PAD_LARGE,
          "precision": "bf16"}),
    ]
    results = {}
    for label, config in configs:
        print(f"[bench] {label} ...", flush=True)
        results[label] = run_config(config, inputs[config.get("input", "small")][0])

    def reference_for(label: str) -> str:
        if label.startswith(f"LR {HR_LARGE // SCALE}"):
            return f"LR {HR_LARGE // SCALE}: untiled fp32"
        return "untiled fp32, gray=luma" if ("luma" in label or "RealESRGANer" in label) \
            else "untiled fp32"

    rows = []
    for label, (seconds, peak, over, out) in results.items():
        ref = results[reference_for(label)][3]
        diff = np.abs(out.astype(np.int32) - ref.astype(np.int32))
        rows.append({
            "configuration": label,
            "seconds": round(seconds, 2),
            "peak RSS (MB)": round(peak),
            "peak over model (MB)": round(over),
            "compared with": reference_for(label),
            "max |diff| (grey levels)": int(diff.max()),
            "pixels differing": f"{100 * float((diff > 0).mean()):.2f}%",
            "PSNR vs that (dB)": round(psnr8(out, ref), 1),
            "PSNR vs HR (dB)": round(psnr8(out, inputs[
                "large" if label.startswith(f"LR {HR_LARGE // SCALE}") else "small"][1]), 2),
        })
    table = pd.DataFrame(rows)
    meta = {
        "image": files[0].name, "hr": HR, "lr": HR // SCALE, "scale": SCALE,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": os.cpu_count(),
    }
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
        "Differences are in 8-bit grey levels of the output.\n\n" + markdown_table(table),
    )
    print(markdown_table(table))


if __name__ == "__main__":
    main()
