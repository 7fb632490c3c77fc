"""Does the CPU's fast precision move the mirror study's scores? The bound of issue 21, item 1.

Issue 21: every output a metric is computed from runs in fp32, unless the profile's precision
is shown, on the same images, to move every method's mean PSNR by less than
:data:`BOUND_DB`. This scores the mirror profile's held-out NIH test pairs (its split, native
512x512 centre crops, bicubic x4 LR, made as notebook 01 makes them) with the pretrained
generator as notebook 04 runs it (the profile's inference settings; outputs rounded to the HR's
bit depth), in fp32 and in each bf16 path of this CPU, and reports each path's mean PSNR
against HR, its shift from fp32 (mean and largest per image), and the shift of the primary
comparison (network minus Lanczos), with ``crop_border`` 0 and 4. Only where the CPU has native
bf16. Output: ``reports/bench/precision_bound.{md,json}`` (one section per CPU kind). Run:
``.venv/bin/python bench/precision_bound.py`` (a few minutes).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any

import numpy as np
from _common import nih_images, stored_runs, table, write_report

BOUND_DB = 0.01
PROFILE = "mirror"


def test_pairs() -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(HR float, LR float, HR max value) of the profile's NIH test split."""
    from cxrsr_utils.core.params import load_params
    from cxrsr_utils.data_prep.splits import split_nih
    from cxrsr_utils.degradation.pairs import centre_crop, pair_forms
    from cxrsr_utils.images.radiographs import read_radiograph

    params = load_params(PROFILE)
    split = split_nih(nih_images(), params.nih, params.seed)
    pairs = []
    for path in split.loc[split["split"] == "test", "file"]:
        image = read_radiograph(path)
        hr = centre_crop(image.pixels, params.nih.eval_hr_size)
        if hr is None:
            continue
        forms = pair_forms(hr, image.max_value, 4)
        top = float(image.max_value)
        pairs.append((forms["hr"] / top, forms["lr"] / top, image.max_value))
    return pairs


def _scores(outputs: list[np.ndarray], pairs: list, border: int) -> np.ndarray:
    from cxrsr_utils.images.radiographs import to_pixels
    from cxrsr_utils.stats import image_metrics as metrics

    return np.array(
        [
            metrics.psnr(to_pixels(sr, top) / top, hr, data_range=1.0, crop_border=border)
            for sr, (hr, _, top) in zip(outputs, pairs, strict=True)
        ]
    )


def measure() -> dict[str, Any]:
    """Every precision path's PSNR on the test pairs, against fp32's."""
    from cxrsr_utils.core import cpu
    from cxrsr_utils.core.params import load_params
    from cxrsr_utils.finetune.inference_settings import evaluate_infer_options
    from cxrsr_utils.sr.upscaler import load_model

    pairs = test_pairs()
    base = evaluate_infer_options(load_params(PROFILE))
    paths = {"fp32": {"precision": "fp32"}}
    if cpu.native_bf16():
        paths["bf16 (auto backend)"] = {"precision": "bf16"}
        paths["bf16 (torch, as the published run)"] = {"precision": "bf16", "backend": "torch"}
    lanczos = load_model("lanczos", base).upscale_floats([lr for _, lr, _ in pairs])
    lanczos_scores = {b: _scores(lanczos, pairs, b) for b in (0, 4)}
    rows = []
    scored: dict[str, dict[int, np.ndarray]] = {}
    for name, change in paths.items():
        model = load_model("pretrained", dataclasses.replace(base, **change))
        t0 = time.perf_counter()
        outputs = model.upscale_floats([lr for _, lr, _ in pairs])
        seconds = time.perf_counter() - t0
        scored[name] = {b: _scores(outputs, pairs, b) for b in (0, 4)}
        for border in (0, 4):
            psnr = scored[name][border]
            shift = psnr - scored["fp32"][border]
            gap = psnr - lanczos_scores[border]
            rows.append(
                {
                    "path": name,
                    "backend": model.options.describe_backend(),
                    "crop_border": border,
                    "mean_psnr": round(float(psnr.mean()), 4),
                    "mean_shift_db": round(float(shift.mean()), 4),
                    "max_abs_shift_db": round(float(np.abs(shift).max()), 4),
                    "vs_lanczos_db": round(float(gap.mean()), 4),
                    "seconds": round(seconds, 1),
                }
            )
            print(rows[-1], flush=True)
    return {
        "cpu_label": cpu.isa_label(),
        "cpu_kind": cpu.cpu_kind(),
        "date": time.strftime("%Y-%m-%d"),
        "images": len(pairs),
        "rows": rows,
    }


def section(result: dict[str, Any]) -> list[str]:
    """One CPU kind's table and verdict."""
    body = [
        [
            r["path"],
            r["backend"],
            r["crop_border"],
            r["mean_psnr"],
            r["mean_shift_db"],
            r["max_abs_shift_db"],
            r["vs_lanczos_db"],
            r["seconds"],
        ]
        for r in result["rows"]
    ]
    moved = [r for r in result["rows"] if abs(r["mean_shift_db"]) >= BOUND_DB]
    verdict = (
        "every bf16 path moves the mean PSNR by "
        f"{min(abs(r['mean_shift_db']) for r in moved):.3f} dB or more (bound {BOUND_DB} dB): "
        "scored outputs must run in fp32 here."
        if moved
        else f"no path moves the mean PSNR by {BOUND_DB} dB or more."
    )
    return [
        f"## {result['cpu_label']} (kind `{result['cpu_kind']}`), {result['date']}",
        "",
        f"The pretrained generator on the mirror's {result['images']} NIH test pairs.",
        "",
        *table(
            [
                "path",
                "backend",
                "crop_border",
                "mean PSNR (dB)",
                "shift from fp32 (dB)",
                "largest per-image shift (dB)",
                "network - Lanczos (dB)",
                "seconds (all images)",
            ],
            body,
        ),
        "",
        f"Verdict: {verdict}",
        "",
    ]


def main() -> None:
    runs = stored_runs("precision_bound")
    if "--report-only" not in sys.argv:
        result = measure()
        runs[result["cpu_kind"]] = result
    lines = ["# Scores in fp32 or bf16: the bound of issue 21, item 1", ""]
    lines += [(__doc__ or "").split("\n\n")[1].replace("\n", " "), ""]
    for key in sorted(runs):
        lines += section(runs[key])
    print(write_report("precision_bound", {"runs": runs}, lines))


if __name__ == "__main__":
    main()
