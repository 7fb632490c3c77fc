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
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import REPORTS, in_fresh_process, nih_images, peak_rss_mb

HR, SCALE = 512, 4
TILE = 64
PADS = (4, 10, 16, 32)
# A larger input shows how memory grows untiled and stays bounded tiled (the CLI's case).
HR_LARGE, TILE_LARGE, PAD_LARGE = 1024, 128, 32
# (label, configuration, label of the run it is compared with)
Config = tuple[str, dict[str, Any], str]


def run_one(config: dict, lr8: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """One configuration (in this process): seconds, peak MB, peak over model MB, uint8 output."""
    import torch

    from cxrsr_utils.images.radiograph import Radiograph
    from cxrsr_utils.sr import networks as models
    from cxrsr_utils.sr.infer import InferOptions, upscale_radiograph

    torch.set_num_threads(os.cpu_count() or 1)
    net, _ = models.load_pretrained_generator(download=False)
    net.eval()
    base = peak_rss_mb()
    if config["engine"] == "RealESRGANer":
        from cxrsr_utils.sr.upstream import RealESRGANer

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
    peak = peak_rss_mb()
    return seconds, peak, peak - base, out


def run_config(config: dict, lr8: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """One configuration in a fresh process, so that its peak memory is its own."""
    status, payload = in_fresh_process(run_one, (config, lr8))
    if status != "ok":
        raise SystemExit(f"benchmark configuration {config} failed: {payload}")
    return payload


def inputs(original: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The small and the large input: name -> (LR uint8, HR uint8), LR by bicubic x4."""
    from cxrsr_utils.images import radiographs

    out = {}
    for name, side in (("small", HR), ("large", HR_LARGE)):
        hr = radiographs.resize(original, (side, side)).clip(0, 1)
        lr = radiographs.resize(hr, (side // SCALE, side // SCALE)).clip(0, 1)
        out[name] = (radiographs.to_pixels(lr, 255), radiographs.to_pixels(hr, 255))
    return out


def configurations() -> list[Config]:
    """Every configuration, each with the label of the run its output is compared with."""
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
    return [
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


def comparison_rows(
    configs: list[Config],
    results: dict[str, tuple[float, float, float, np.ndarray]],
    images: dict[str, tuple[np.ndarray, np.ndarray]],
) -> list[dict[str, Any]]:
    """Per configuration: time, memory, and its output against its reference run and the HR."""
    from cxrsr_utils.stats import image_metrics as metrics

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
                    metrics.psnr(out, images[config["input"]][1], data_range=255), 2
                ),
            }
        )
    return rows


def write_report(data: dict[str, Any], folder: Path = REPORTS) -> str:
    """inference.{json,md} in ``folder`` (``reports/bench``) from ``{"rows": ..., **meta}``;
    returns the Markdown table."""
    import pandas as pd

    from cxrsr_utils.core import atomic, cpu
    from cxrsr_utils.reporting.files import markdown_table

    skipped = data.get("skipped", [])  # reports before the bf16 check have none
    note = (
        f"\n\nNot run on this CPU (bf16 is emulated here, about "
        f"{cpu.EMULATED_BF16_SLOWDOWN}x slower than fp32): {', '.join(skipped)}."
        if skipped
        else ""
    )
    table = markdown_table(pd.DataFrame(data["rows"]))
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / "inference.json", json.dumps(data, indent=2))
    atomic.write_text(
        folder / "inference.md",
        "# Inference engine: tiling, precision, memory, parity with RealESRGANer\n\n"
        f"Pretrained RealESRGAN_x4plus (offline ncnn conversion) on NIH `{data['image']}`, HR "
        f"{HR}x{HR}, LR bicubic x{SCALE} ({HR // SCALE}x{HR // SCALE}), 8-bit (rows 'LR "
        f"{HR_LARGE // SCALE}': HR {HR_LARGE}x{HR_LARGE}, the image's full size); "
        f"{data['machine']}; each configuration in a fresh process; batch 1, pre_pad 10. "
        "Differences are in 8-bit grey levels of the output." + note + "\n\n" + table,
    )
    return table


def main() -> None:
    from cxrsr_utils.core import cpu
    from cxrsr_utils.images import radiographs

    files = nih_images()
    images = inputs(radiographs.read_radiograph(files[0]).as_float())
    configs = configurations()
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
        results[label] = run_config(config, images[config["input"]][0])
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
    print(write_report({"rows": comparison_rows(configs, results, images), **meta}))


if __name__ == "__main__":
    main()
