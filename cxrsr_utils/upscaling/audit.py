"""What the model invented, per output (``cxrsr upscale --audit``).

Two measures a radiologist can use to decide where to distrust a super-resolved image:

- **LR-consistency PSNR**: the output downsampled with the kernel that made the study's LR
  images (PIL's antialiased bicubic, :func:`cxrsr_utils.stats.image_metrics.lr_consistency`)
  against the
  input. A
  faithful upscale reproduces its input when shrunk back (bicubic upscaling itself scores
  about 40-50 dB on radiographs); a low value means the output is not an upscale of *this*
  input.
- **Departure map**: where the output differs from the plain bicubic upscale of the input by
  more than ``threshold`` of the full range (default 0.05, i.e. 5 %, about 13 grey levels in
  8 bits). Those are the pixels the network added or removed detail; they are written as an
  8-bit mask (255: departs) beside the output, ``<name>.audit.png``, and their share goes to
  the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrsr_utils.images.radiograph import Radiograph
from cxrsr_utils.sr import infer
from cxrsr_utils.stats import image_metrics as metrics

DEFAULT_THRESHOLD = 0.05
# Rows of the output compared at a time, so a 12000 x 12000 output never has more than a
# strip of float copies in memory.
_STRIP_ROWS = 1024


@dataclass(frozen=True)
class Audit:
    """The audit of one output."""

    lr_psnr_db: float
    departs_fraction: float
    threshold: float
    mask: np.ndarray

    def to_dict(self) -> dict[str, float]:
        return {
            "lr_consistency_psnr_db": round(self.lr_psnr_db, 3),
            "departs_fraction": round(self.departs_fraction, 6),
            "departs_threshold": self.threshold,
        }


def audit(
    rad_in: Radiograph, rad_out: Radiograph, scale: int, threshold: float = DEFAULT_THRESHOLD
) -> Audit:
    """LR-consistency PSNR and the departure mask of ``rad_out`` (upscaled ``rad_in``)."""
    if not 0 < threshold < 1:
        raise ValueError(f"audit threshold must be in (0, 1), got {threshold}.")
    lr = rad_in.as_float()
    # In the radiograph's own units (its real maximum), as the study measures LR consistency.
    consistency = metrics.lr_consistency(
        rad_out.pixels, rad_in.pixels, data_range=float(rad_in.max_value)
    )
    bicubic = infer.baseline_array(lr, scale=scale)
    mask = np.zeros(rad_out.pixels.shape, np.uint8)
    for y0 in range(0, rad_out.pixels.shape[0], _STRIP_ROWS):
        rows = slice(y0, y0 + _STRIP_ROWS)
        out = rad_out.pixels[rows].astype(np.float32) / np.float32(rad_out.max_value)
        mask[rows] = np.where(np.abs(out - bicubic[rows]) > threshold, 255, 0)
    return Audit(consistency, float(np.count_nonzero(mask)) / mask.size, threshold, mask)
