"""The inference backends side by side on this machine's CPU (issue 20, first part).

Pretrained x4plus on a real NIH radiograph: HR crops of 4n x 4n, LR by bicubic x4 (n = 64,
128), one untiled forward pass per configuration, best of 2 after a warm-up, in one process.
Columns: seconds, speed-up over torch eager fp32, agreement with torch eager fp32 (PSNR of one
output against the other), PSNR against HR, and GFLOP/s (2 x the multiply-adds of every
convolution, counted with forward hooks). The OpenVINO conversion's one-off time is reported
too (it is cached by the weights' SHA-256 afterwards). bf16 rows run only where the CPU has
native bf16. Output: ``reports/bench/backends.{md,json}``. Run: ``.venv/bin/python
bench/backends.py``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
from _common import REPORTS, nih_images

SIZES = (64, 128)


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


def main() -> None:
    import torch

    from cxrsr_utils import backends, cpu, infer, metrics, models
    from cxrsr_utils.radiographs import read_radiograph, resize

    torch.set_num_threads(os.cpu_count() or 1)
    net, info = models.load_pretrained_generator(download=False)
    image = read_radiograph(nih_images()[0]).as_float()
    configs: list[tuple[str, dict[str, Any]]] = [
        ("torch eager fp32", {"backend": "torch", "precision": "fp32"}),
        (
            "torch channels_last fp32",
            {"backend": "torch", "precision": "fp32", "channels_last": True},
        ),
        ("openvino fp32", {"backend": "openvino", "precision": "fp32"}),
    ]
    if cpu.native_bf16():
        configs += [
            ("torch bf16 autocast", {"backend": "torch", "precision": "bf16"}),
            (
                "torch channels_last bf16",
                {"backend": "torch", "precision": "bf16", "channels_last": True},
            ),
            ("openvino bf16", {"backend": "openvino", "precision": "bf16"}),
        ]
    t0 = time.perf_counter()
    backends.convert(net, channels=3, mod=1)
    conversion_s = time.perf_counter() - t0
    rows = []
    for side in SIZES:
        h0 = (image.shape[0] - 4 * side) // 2
        hr = np.clip(resize(image[h0 : h0 + 4 * side, h0 : h0 + 4 * side], (4 * side,) * 2), 0, 1)
        lr = np.clip(resize(hr, (side, side), method="bicubic"), 0, 1)
        flop = 2 * conv_macs(net, side)
        reference = None
        for name, settings in configs:
            options = infer.InferOptions(tile=0, pre_pad=0, progress=False, **settings)
            infer.upscale_array(lr, net, options)  # warm-up (compiles OpenVINO for the shape)
            times = []
            for _ in range(2):
                start = time.perf_counter()
                out = infer.upscale_array(lr, net, options)
                times.append(time.perf_counter() - start)
            reference = out if reference is None else reference
            seconds = min(times)
            rows.append(
                {
                    "lr": f"{side}x{side}",
                    "backend": name,
                    "label": options.describe_backend(),
                    "seconds": round(seconds, 3),
                    "agreement_db": round(metrics.psnr(out, reference, data_range=1.0), 1)
                    if out is not reference
                    else None,
                    "psnr_hr_db": round(metrics.psnr(out, hr, data_range=1.0), 3),
                    "gflop_s": round(flop / seconds / 1e9, 1),
                }
            )
            print(rows[-1], flush=True)
    for row in rows:
        base = next(r for r in rows if r["lr"] == row["lr"] and r["backend"] == "torch eager fp32")
        row["speedup"] = round(base["seconds"] / row["seconds"], 2)
    result = {
        "cpu": cpu.describe(),
        "cpu_label": cpu.isa_label(),
        "cpu_kind": backends.cpu_kind(),
        "emulated": bool(cpu.isa_limits()),
        "threads": torch.get_num_threads(),
        "weights": info.to_dict(),
        "openvino": backends.openvino_version(),
        "torch": torch.__version__,
        "conversion_seconds": round(conversion_s, 1),
        "rows": rows,
    }
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "backends.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Inference backends side by side",
        "",
        f"CPU: **{result['cpu_label']}** (kind `{result['cpu_kind']}`, "
        f"{'emulated with ONEDNN_MAX_CPU_ISA' if result['emulated'] else 'not emulated'}), "
        f"{result['threads']} threads; torch {result['torch']}, OpenVINO {result['openvino']}; "
        f"weights {info.source} ({info.sha256[:12]}). Made by `bench/backends.py`.",
        "",
        "One untiled pass of the pretrained x4plus, best of 2 after a warm-up; agreement is PSNR "
        "against torch eager fp32's output; GFLOP/s counts 2 x every convolution's "
        f"multiply-adds. OpenVINO's one-off conversion: {result['conversion_seconds']} s "
        "(cached by the weights' SHA-256).",
        "",
        "| LR | backend | seconds | vs eager fp32 | agreement dB | PSNR vs HR dB | GFLOP/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        agreement = "—" if r["agreement_db"] is None else f"{r['agreement_db']}"
        lines.append(
            f"| {r['lr']} | {r['label']} | {r['seconds']} | {r['speedup']}x | {agreement} | "
            f"{r['psnr_hr_db']} | {r['gflop_s']} |"
        )
    if not cpu.native_bf16():
        lines += ["", "No bf16 rows: this CPU has no native bf16 (torch would emulate it)."]
    (REPORTS / "backends.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
