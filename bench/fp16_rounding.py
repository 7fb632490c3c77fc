"""How far does fp16 rounding of the generator's weights move its output?

The offline generator is the official RealESRGAN_x4plus with weights rounded to fp16 (the ncnn
copy). The fp32 original cannot be downloaded here, so two honest stand-ins are measured on
real NIH radiographs from the mirror:

1. "pretrained": the converted network vs. a copy whose every weight is moved by a uniform
   random amount within +-half an fp16 ulp, which is exactly the set of fp32 weights that
   round to the same fp16 values (a plausible fp32 original).
2. "random init": an fp32 RRDBNet vs. its own fp16-rounded copy (a network where both exist).

Output: ``reports/bench/fp16_rounding.{md,json}``. Run: ``make bench``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxrsr_utils.core import atomic  # noqa: E402
from cxrsr_utils.images import radiographs  # noqa: E402
from cxrsr_utils.reporting.files import markdown_table  # noqa: E402
from cxrsr_utils.sr import networks as models  # noqa: E402

N_IMAGES = 8
HR, SCALE = 256, 4


def perturb_within_half_ulp(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Weights moved uniformly within +-half an fp16 ulp (they still round to the same fp16)."""
    gen = np.random.default_rng(seed)
    out = {}
    for k, v in state.items():
        if not k.endswith("weight"):
            out[k] = v.clone()
            continue
        w = v.numpy().astype(np.float16)
        ulp = np.spacing(np.abs(w)).astype(np.float32)
        noise = gen.uniform(-0.5, 0.5, size=w.shape).astype(np.float32) * ulp * 0.999
        out[k] = torch.from_numpy(w.astype(np.float32) + noise)
    return out


def rounded(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.half().float() if k.endswith("weight") else v.clone()) for k, v in state.items()}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def run(net: torch.nn.Module, lr: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(lr)[None, None].repeat(1, 3, 1, 1)
    with torch.no_grad():
        return net(x).clamp(0, 1).mean(1)[0].numpy()


def main() -> None:
    mirror = Path(os.environ.get("CXRSR_MIRROR", ROOT.parent / "shared" / "mirror"))
    files = sorted((mirror / "data" / "nih-sample" / "images").glob("*.png"))[:N_IMAGES]
    if not files:
        raise SystemExit(f"No NIH images under {mirror}; set CXRSR_MIRROR.")
    torch.manual_seed(0)
    state, info = models.pretrained_generator_state(download=False)
    pairs = {
        "pretrained (fp16 weights vs. a fp32 original within half an ulp)": (
            state,
            perturb_within_half_ulp(state, 0),
        ),
    }
    random_state = {k: v.clone() for k, v in models.build_generator().state_dict().items()}
    pairs["random init (fp32 vs. its fp16 rounding)"] = (random_state, rounded(random_state))
    rows = []
    t0 = time.time()
    for label, (a_state, b_state) in pairs.items():
        a, b = models.build_generator().eval(), models.build_generator().eval()
        a.load_state_dict(a_state)
        b.load_state_dict(b_state)
        diffs, psnrs, gt_a, gt_b = [], [], [], []
        for f in files:
            hr = radiographs.resize(radiographs.read_radiograph(f).as_float(), (HR, HR)).clip(0, 1)
            lr = radiographs.resize(hr, (HR // SCALE, HR // SCALE)).clip(0, 1)
            out_a, out_b = run(a, lr), run(b, lr)
            diffs.append(np.abs(out_a - out_b).max() * 255)
            psnrs.append(psnr(out_a, out_b))
            gt_a.append(psnr(out_a, hr))
            gt_b.append(psnr(out_b, hr))
        rows.append(
            {
                "comparison": label,
                "images": len(files),
                "max |diff| (8-bit levels)": round(float(np.max(diffs)), 3),
                "PSNR between outputs (dB)": round(float(np.mean(psnrs)), 1),
                "PSNR vs HR, first (dB)": round(float(np.mean(gt_a)), 3),
                "PSNR vs HR, second (dB)": round(float(np.mean(gt_b)), 3),
            }
        )
    out = ROOT / "reports" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    table = pd.DataFrame(rows)
    meta = {"weights": info.to_dict(), "hr": HR, "scale": SCALE, "seconds": time.time() - t0}
    atomic.write_text(out / "fp16_rounding.json", json.dumps({"rows": rows, **meta}, indent=2))
    atomic.write_text(
        out / "fp16_rounding.md",
        "# fp16 rounding of the generator's weights\n\n"
        f"{N_IMAGES} NIH radiographs from the mirror, HR {HR}x{HR}, LR bicubic x{SCALE}. "
        "Outputs are the mean of the 3 output channels in [0, 1].\n\n" + markdown_table(table),
    )
    print(markdown_table(table))


if __name__ == "__main__":
    main()
