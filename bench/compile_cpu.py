"""``torch.compile`` as an inference backend on this CPU: compile time, speed and agreement.

Issue 20 lists ``torch.compile`` among the candidates for the engine's backends. This compiles
the pretrained x4plus with inductor (the default backend, ``mode`` default, dynamic shapes
off), at fp32 and, where the CPU has native bf16, under bf16 autocast, in channels_last (the
faster torch layout in ``reports/bench/backends.md``), and times one 128x128 LR input: the
first call (compilation included) and the best of 2 after it, against torch eager fp32 and
OpenVINO at the same precision in the same process. Agreement is PSNR against torch eager
fp32's output. Output: ``reports/bench/compile_cpu.{md,json}`` (one section per CPU kind).
Run: ``.venv/bin/python bench/compile_cpu.py`` (several minutes on 2 cores: compiling).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import nih_images, stored_runs, table, write_report

SIDE = 128


def _timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    """(first call's seconds, best of the next 2, the last output)."""
    t0 = time.perf_counter()
    out = run()
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t0)
    return first, best, out


def measure() -> dict[str, Any]:
    """Eager, compiled and OpenVINO rows for one LR input of SIDE x SIDE."""
    import numpy as np
    import torch
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    from cxrsr_utils.core import cpu
    from cxrsr_utils.images.radiographs import read_radiograph, resize
    from cxrsr_utils.sr import backends
    from cxrsr_utils.sr import networks as models
    from cxrsr_utils.stats import image_metrics as metrics

    warm_cache = Path(cache_dir()).is_dir()  # a warm cache makes the first call short
    torch.set_num_threads(os.cpu_count() or 1)
    net, _ = models.load_pretrained_generator(download=False)
    net.eval()
    image = read_radiograph(nih_images()[0]).as_float()
    hr = np.clip(resize(image[256 : 256 + 4 * SIDE, 256 : 256 + 4 * SIDE], (4 * SIDE,) * 2), 0, 1)
    lr = np.clip(resize(hr, (SIDE, SIDE), method="bicubic"), 0, 1)
    x = torch.from_numpy(np.repeat(lr[None, None], 3, axis=1)).float()

    def to_gray(y: torch.Tensor) -> np.ndarray:
        return np.clip(y.float().mean(1)[0].numpy(), 0, 1)

    def eager(precision: str, channels_last: bool, model: Any) -> Callable[[], np.ndarray]:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        xin = x.contiguous(memory_format=fmt)

        def run() -> np.ndarray:
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"),
            ):
                return to_gray(model(xin))

        return run

    rows: list[dict[str, Any]] = []
    reference = None
    precisions = ("fp32", "bf16") if cpu.native_bf16() else ("fp32",)
    for precision in precisions:
        ov = backends.openvino_forward(net, 3, 1, precision)
        runs: list[tuple[str, Callable[[], np.ndarray]]] = [
            (f"torch eager {precision}", eager(precision, False, net)),
            ("openvino " + precision, lambda ov=ov: to_gray(ov(x))),
        ]
        compiled = models.build_generator()
        compiled.load_state_dict(net.state_dict())
        compiled.eval().to(memory_format=torch.channels_last)
        compiled.compile()
        runs.append((f"torch.compile channels_last {precision}", eager(precision, True, compiled)))
        for name, run in runs:
            first, best, out = _timed(run)
            if reference is None:
                reference = out
            rows.append(
                {
                    "backend": name,
                    "first_s": round(first, 2),
                    "seconds": round(best, 3),
                    "agreement_db": None
                    if out is reference
                    else round(metrics.psnr(out, reference, data_range=1.0), 1),
                    "psnr_hr_db": round(metrics.psnr(out, hr, data_range=1.0), 3),
                }
            )
            print(rows[-1], flush=True)
    return {
        "cpu_label": cpu.isa_label(),
        "cpu_kind": cpu.cpu_kind(),
        "inductor_cache_warm": warm_cache,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "side": SIDE,
        "rows": rows,
    }


def _cache_text(warm: bool | None) -> str:
    if warm is None:
        return "not recorded (warm: an earlier run, with an empty cache, took 48-54 s)"
    return "warm (an earlier run's kernels)" if warm else "empty (the first call compiles)"


def report(runs: dict[str, dict[str, Any]]) -> str:
    """Write reports/bench/compile_cpu.{json,md}; return the Markdown."""
    lines = ["# torch.compile on the CPU, beside torch eager and OpenVINO", ""]
    lines += [(__doc__ or "").split("\n\n")[1].replace("\n", " "), ""]
    for key in sorted(runs):
        run = runs[key]
        eager = run["rows"][0]["seconds"]
        lines += [
            f"## {run['cpu_label']} (kind `{key}`), torch {run['torch']}, {run['date']}",
            "",
            f"Inductor's cache at the start: {_cache_text(run.get('inductor_cache_warm'))}.",
            "",
            *table(
                [
                    "backend",
                    "first call (s)",
                    "seconds",
                    "vs eager fp32",
                    "agreement dB",
                    "PSNR vs HR",
                ],
                [
                    [
                        r["backend"],
                        r["first_s"],
                        r["seconds"],
                        f"{eager / r['seconds']:.2f}x",
                        "—" if r["agreement_db"] is None else r["agreement_db"],
                        r["psnr_hr_db"],
                    ]
                    for r in run["rows"]
                ],
            ),
            "",
        ]
    return write_report("compile_cpu", {"runs": runs}, lines)


def main() -> None:
    runs = stored_runs("compile_cpu")
    if "--report-only" not in sys.argv:
        result = measure()
        runs[result["cpu_kind"]] = result
    print(report(runs))


if __name__ == "__main__":
    main()
