"""The inference backends side by side on this machine's CPU (issue 20).

Pretrained x4plus on a real NIH radiograph: HR crops of 4n x 4n, LR by bicubic x4 (n = 64,
128, 192 = the command's window at tile 128 / pad 32, 256), one untiled forward pass per
configuration, best of 2 after a warm-up, in one process. Columns: seconds; speed-up over torch
eager fp32 and over realesrgan's own ``RealESRGANer`` fp32 (untiled, ``pre_pad`` 0, the
reference a user of Real-ESRGAN would start from); agreement with torch eager fp32 (PSNR of one
output against the other); PSNR against HR; GFLOP/s (2 x the multiply-adds of every
convolution, counted with forward hooks) and its share of the CPU's fp32 peak
(:func:`fp32_peak_gflops`: cores x clock x FLOP per cycle, an estimate named in the report).
The OpenVINO conversion's one-off time is reported too (cached by the weights' SHA-256
afterwards). bf16 rows run only where the CPU has native bf16. ``--emulate avx512_bf16 avx2``
also runs those slower kinds, each in its own process with oneDNN limited to them
(``cxrsr_utils.core.cpu.KIND_ENV``); their sections say they were emulated. Each CPU kind has
its own section of ``reports/bench/backends.{md,json}``; a run replaces its own. Run:
``.venv/bin/python bench/backends.py [--sizes 64 128] [--emulate avx512_bf16]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import REPORTS, nih_images, stored_runs, table, write_report

SIZES = (64, 128, 192, 256)
REFERENCE = "RealESRGANer fp32"


def conv_macs(net: Any, side: int) -> int:
    """Multiply-adds of every Conv2d for one (1, 3, side, side) input."""
    import torch

    total = 0

    def hook(module: torch.nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        total += int(output.numel()) * per_output

    handles = [
        m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        net(torch.zeros(1, 3, side, side))
    for handle in handles:
        handle.remove()
    return total


def fp32_peak_gflops(threads: int) -> tuple[float, str]:
    """An estimate of the fp32 FMA peak of ``threads`` cores, and how it was made: two FMA
    pipes per core, 256 bits wide on AVX2 and on AMD's AVX-512 (Zen 4 runs 512-bit FMAs as two
    halves), 512 bits on Intel's AVX-512; at the clock /proc/cpuinfo reports."""
    from cxrsr_utils.core import cpu

    ghz = _clock_ghz()
    # An AVX2-limited run uses 256-bit FMAs whatever the CPU has.
    intel_512 = cpu.cpu_kind() != "avx2" and "Intel" in cpu.cpu_model()
    lanes = 16 if intel_512 else 8  # fp32 lanes per FMA
    flop_per_cycle = 2 * 2 * lanes  # two pipes, an FMA is two FLOP
    peak = threads * ghz * flop_per_cycle
    how = f"{threads} cores x {ghz:.2f} GHz x {flop_per_cycle} FLOP/cycle"
    return peak, how


def bf16_peak_gflops(threads: int) -> tuple[float | None, str]:
    """An estimate of the bf16 peak of ``threads`` cores of this CPU kind: AMX's tile unit
    does 1024 bf16 multiply-adds per cycle per core (Intel's figure); AVX512_BF16's
    ``vdpbf16ps`` 32 per 512-bit instruction, two pipes on Intel, one 512-bit pass per two
    cycles' worth on AMD's 256-bit halves."""
    from cxrsr_utils.core import cpu

    kind = cpu.cpu_kind()
    ghz = _clock_ghz()
    if kind == "amx":
        per_cycle = 2 * 1024
    elif kind == "avx512_bf16":
        per_cycle = 2 * 32 * (2 if "Intel" in cpu.cpu_model() else 1)
    else:
        return None, "none (no native bf16)"
    return threads * ghz * per_cycle, f"{threads} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle"


def _clock_ghz() -> float:
    for line in open("/proc/cpuinfo"):
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000
    return 0.0


def _configs(native_bf16: bool) -> list[tuple[str, dict[str, Any]]]:
    configs: list[tuple[str, dict[str, Any]]] = [
        ("torch eager fp32", {"backend": "torch", "precision": "fp32"}),
        (
            "torch channels_last fp32",
            {"backend": "torch", "precision": "fp32", "channels_last": True},
        ),
        ("openvino fp32", {"backend": "openvino", "precision": "fp32"}),
    ]
    if native_bf16:
        configs += [
            ("torch bf16 autocast", {"backend": "torch", "precision": "bf16"}),
            (
                "torch channels_last bf16",
                {"backend": "torch", "precision": "bf16", "channels_last": True},
            ),
            ("openvino bf16", {"backend": "openvino", "precision": "bf16"}),
        ]
    return configs


def _best_of_2(run: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    run()  # warm-up (compiles OpenVINO for the shape)
    times, out = [], None
    for _ in range(2):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    assert out is not None
    return min(times), out


def _realesrganer(net: Any) -> Callable[[np.ndarray], np.ndarray]:
    """realesrgan's RealESRGANer on ``net``'s weights, fp32, untiled, pre_pad 0: gray [0, 1]
    in and out (it works in 8-bit BGR)."""
    import tempfile
    from pathlib import Path

    import torch

    from cxrsr_utils.sr import networks as models
    from cxrsr_utils.sr.upstream import RealESRGANer

    # RealESRGANer only loads weights from a file: hand it the converted state dict.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x4plus.pth"
        torch.save({"params_ema": net.state_dict()}, path)
        upsampler = RealESRGANer(
            scale=4,
            model_path=str(path),
            model=models.build_generator(),
            tile=0,
            pre_pad=0,
            half=False,
            device=torch.device("cpu"),
        )

    def run(lr: np.ndarray) -> np.ndarray:
        bgr = np.repeat((lr * 255).round().astype(np.uint8)[..., None], 3, axis=2)
        out, _ = upsampler.enhance(bgr, outscale=4)
        return out[..., 0].astype(np.float32) / 255.0

    return run


def _size_rows(net: Any, image: np.ndarray, side: int, peak: float) -> list[dict[str, Any]]:
    from cxrsr_utils.core import cpu
    from cxrsr_utils.images.radiographs import resize
    from cxrsr_utils.sr import infer
    from cxrsr_utils.stats import image_metrics as metrics

    h0 = (image.shape[0] - 4 * side) // 2
    hr = np.clip(resize(image[h0 : h0 + 4 * side, h0 : h0 + 4 * side], (4 * side,) * 2), 0, 1)
    lr = np.clip(resize(hr, (side, side), method="bicubic"), 0, 1)
    flop = 2 * conv_macs(net, side)
    rows, reference = [], None
    esrganer = _realesrganer(net)
    runs: list[tuple[str, str, Callable[[], np.ndarray]]] = [
        (REFERENCE, REFERENCE, lambda: esrganer(lr))
    ]
    for name, settings in _configs(cpu.native_bf16()):
        options = infer.InferOptions(tile=0, pre_pad=0, progress=False, **settings)
        runs.append(
            (name, options.describe_backend(), lambda o=options: infer.upscale_array(lr, net, o))
        )
    for name, label, run in runs:
        seconds, out = _best_of_2(run)
        if name == "torch eager fp32":
            reference = out
        rows.append(
            {
                "lr": f"{side}x{side}",
                "backend": name,
                "label": label,
                "seconds": round(seconds, 3),
                "psnr_hr_db": round(metrics.psnr(out, hr, data_range=1.0), 3),
                "gflop_s": round(flop / seconds / 1e9, 1),
                "peak_share": round(flop / seconds / 1e9 / peak, 2),
                "_out": out,
            }
        )
        print({k: v for k, v in rows[-1].items() if k != "_out"}, flush=True)
    for row in rows:
        out = row.pop("_out")
        # RealESRGANer works in 8 bits with luma gray: agreement with ours is not the question.
        row["agreement_db"] = (
            None
            if row["backend"] in ("torch eager fp32", REFERENCE)
            else round(metrics.psnr(out, reference, data_range=1.0), 1)
        )
    return rows


def conversion_seconds(net: Any) -> float:
    """The one-off OpenVINO conversion of ``net``, timed into an empty cache (the user cache
    may hold it already, and then the rows below reuse it)."""
    import tempfile
    from pathlib import Path

    from cxrsr_utils.sr import backends

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        backends.convert(net, channels=3, mod=1, cache=Path(tmp))
        return time.perf_counter() - t0


def measure(sizes: tuple[int, ...]) -> dict[str, Any]:
    """Every configuration at every LR size on this CPU."""
    import torch

    from cxrsr_utils.core import cpu
    from cxrsr_utils.images.radiographs import read_radiograph
    from cxrsr_utils.sr import backends
    from cxrsr_utils.sr import networks as models

    torch.set_num_threads(os.cpu_count() or 1)
    net, info = models.load_pretrained_generator(download=False)
    image = read_radiograph(nih_images()[0]).as_float()
    conversion_s = conversion_seconds(net)
    peak, peak_how = fp32_peak_gflops(torch.get_num_threads())
    bf16_peak, bf16_how = bf16_peak_gflops(torch.get_num_threads())
    rows = [row for side in sizes for row in _size_rows(net, image, side, peak)]
    for row in rows:
        same = [r for r in rows if r["lr"] == row["lr"]]
        eager = next(r for r in same if r["backend"] == "torch eager fp32")
        esrganer = next(r for r in same if r["backend"] == REFERENCE)
        row["speedup"] = round(eager["seconds"] / row["seconds"], 2)
        row["vs_realesrganer"] = round(esrganer["seconds"] / row["seconds"], 2)
    return {
        "cpu": cpu.describe(),
        "cpu_label": cpu.isa_label(),
        "cpu_kind": cpu.cpu_kind(),
        "emulated": cpu.limited_kind() is not None,
        "isa_limits": cpu.isa_limits(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "fp32_peak_gflops": round(peak, 1),
        "fp32_peak_how": peak_how,
        "bf16_peak_gflops": round(bf16_peak, 1) if bf16_peak else None,
        "bf16_peak_how": bf16_how,
        "weights": info.to_dict(),
        "openvino": backends.openvino_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "conversion_seconds": round(conversion_s, 1),
        "rows": rows,
    }


# Issue 20's targets per CPU kind: scoring (fp32, >= 100 dB agreement) against torch eager
# fp32, viewing (>= 45 dB, cxrsr_utils.sr.backends.VIEW_AGREEMENT_DB) against RealESRGANer fp32.
SCORE_TARGET = 1.4
VIEW_TARGETS = {"amx": 6.0, "avx512_bf16": 2.5}


def section_key(result: dict[str, Any]) -> str:
    """A run's section: its CPU kind, and whether that kind was emulated."""
    return result["cpu_kind"] + (" (emulated)" if result["emulated"] else "")


def targets(result: dict[str, Any]) -> list[str]:
    """The best scoring and viewing backend per LR size against issue 20's targets."""
    from cxrsr_utils.sr.backends import SCORE_AGREEMENT_DB, VIEW_AGREEMENT_DB

    lines = []
    view_target = VIEW_TARGETS.get(result["cpu_kind"])
    for lr in dict.fromkeys(r["lr"] for r in result["rows"]):
        same = [r for r in result["rows"] if r["lr"] == lr and r["agreement_db"] is not None]
        score = [r for r in same if r["agreement_db"] >= SCORE_AGREEMENT_DB]
        view = [r for r in same if r["agreement_db"] >= VIEW_AGREEMENT_DB]
        text = f"- {lr}:"
        if score:
            best = max(score, key=lambda r: r["speedup"])
            ok = "meets" if best["speedup"] >= SCORE_TARGET else "misses"
            text += (
                f" scoring {best['speedup']}x eager fp32 ({best['label']}; {ok} {SCORE_TARGET}x)"
            )
        if view:
            best = max(view, key=lambda r: r["vs_realesrganer"])
            goal = (
                f"; {'meets' if best['vs_realesrganer'] >= view_target else 'misses'} "
                f"{view_target}x"
                if view_target
                else ""
            )
            text += f"; viewing {best['vs_realesrganer']}x RealESRGANer ({best['label']}{goal})"
        lines.append(text)
    return lines


def section(result: dict[str, Any]) -> list[str]:
    """One CPU kind's table, with what ran and how the peak was estimated."""
    emulated = (
        f"**emulated** on this CPU with {result['isa_limits']}"
        if result["emulated"]
        else "not emulated"
    )
    lines = [
        f"## CPU kind `{section_key(result)}`",
        "",
        f"CPU: **{result['cpu_label']}** ({emulated}), {result['threads']} threads, "
        f"OMP_WAIT_POLICY {result.get('omp_wait_policy', 'PASSIVE')}; torch "
        f"{result['torch']}, OpenVINO {result['openvino']}; weights "
        f"{result['weights']['source']} ({result['weights']['sha256'][:12]}); {result['date']}. "
        f"fp32 FMA peak estimated as {result['fp32_peak_how']} = {result['fp32_peak_gflops']} "
        f"GFLOP/s; bf16 peak {result.get('bf16_peak_how', 'not estimated')}. OpenVINO's one-off "
        f"conversion: {result['conversion_seconds']} s (cached by the weights' SHA-256).",
        "",
    ]
    bf16_peak = result.get("bf16_peak_gflops")
    header = [
        "LR",
        "backend",
        "seconds",
        "vs eager fp32",
        f"vs {REFERENCE}",
        "agreement dB",
        "PSNR vs HR dB",
        "GFLOP/s",
        "% of fp32 peak",
        "% of bf16 peak",
    ]
    body = [
        [
            r["lr"],
            r["label"],
            r["seconds"],
            f"{r['speedup']}x",
            f"{r['vs_realesrganer']}x",
            "—" if r["agreement_db"] is None else r["agreement_db"],
            r["psnr_hr_db"],
            r["gflop_s"],
            f"{100 * r['peak_share']:.0f}%",
            f"{100 * r['gflop_s'] / bf16_peak:.0f}%" if bf16_peak and "bf16" in r["label"] else "",
        ]
        for r in result["rows"]
    ]
    lines += table(header, body)
    if not any("bf16" in r["backend"] for r in result["rows"]):
        lines += ["", "No bf16 rows: this CPU kind has no native bf16 (torch would emulate it)."]
    return [*lines, "", "Best per size against issue 20's targets:", *targets(result), ""]


def load_runs() -> dict[str, dict[str, Any]]:
    """The stored runs by section (a one-run file from before sections were kept, too)."""
    path = REPORTS / "backends.json"
    stored = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    if "runs" in stored:
        return stored_runs("backends")
    stored.setdefault("isa_limits", {})
    return {section_key(stored): stored}


def report(runs: dict[str, dict[str, Any]]) -> str:
    """Write reports/bench/backends.{json,md} (one section per CPU kind); return the Markdown."""
    lines = [
        "# Inference backends side by side",
        "",
        "Made by `bench/backends.py`; one section per CPU kind, each from its own run (a run "
        "replaces its kind's section and keeps the others). One untiled pass of the pretrained "
        "x4plus, best of 2 after a warm-up. Agreement is PSNR against torch eager fp32's output. "
        "GFLOP/s counts 2 x every convolution's multiply-adds; the peaks are estimates named in "
        f"each section. {REFERENCE} is realesrgan's own class (8-bit, luma gray), the baseline "
        "a Real-ESRGAN user has. An emulated section ran on a faster CPU with oneDNN limited to "
        "the kind's instructions (cxrsr_utils.core.cpu.KIND_ENV): its convolutions run that "
        "kind's kernels, its clock and memory are the faster machine's.",
        "",
    ]
    order = sorted(runs, key=lambda k: (runs[k]["emulated"], k))
    for key in order:
        lines += section(runs[key])
    return write_report("backends", {"runs": runs}, lines)


def main() -> None:
    import subprocess
    import sys

    from cxrsr_utils.core import cpu

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--emulate",
        nargs="*",
        choices=sorted(cpu.KIND_ENV),
        default=[],
        help="also run these slower CPU kinds, each in its own process under KIND_ENV",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the stored JSON"
    )
    args = parser.parse_args()
    if args.report_only:
        print(report(load_runs()))
        return
    result = measure(tuple(args.sizes))
    runs = load_runs()
    runs[section_key(result)] = result
    print(report(runs))
    for kind in args.emulate:
        env = {**os.environ, **cpu.KIND_ENV[kind]}
        sizes = [str(s) for s in args.sizes]
        subprocess.run([sys.executable, __file__, "--sizes", *sizes], env=env, check=True)


if __name__ == "__main__":
    main()
