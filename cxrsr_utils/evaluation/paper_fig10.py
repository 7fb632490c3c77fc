"""The paper's Fig 10 table in its own form: SR and the original each scored against the LR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrsr_utils.core.layout import StudyLayout
from cxrsr_utils.evaluation.labels import dataset_label
from cxrsr_utils.evaluation.methods import Method
from cxrsr_utils.evaluation.steps import sr_path
from cxrsr_utils.images import radiographs
from cxrsr_utils.sr import infer
from cxrsr_utils.stats import image_metrics as metrics


def paper_table(
    pairs: pd.DataFrame, work: StudyLayout | Path, methods: list[Method]
) -> pd.DataFrame:
    """The paper's Fig 10 table in its own form, for each SR method, data set and condition.

    The paper compares against the *LR* image, brought to HR size with bicubic here:
    "Between Original & LR" = metric(HR, bicubic(LR)), "Between SR & LR" =
    metric(SR, bicubic(LR)), "Improvement (%)" = (SR&LR - Original&LR) / Original&LR x 100.
    This rewards an SR image for resembling the blurry input rather than the ground truth,
    so it cannot tell whether SR restored anything; the proper table scores against HR.
    """
    rows = []
    for method in methods:
        for (dataset, condition), part in pairs.groupby(["dataset", "condition"], sort=True):
            orig, srs = [], []
            for pair in part.itertuples():
                hr = radiographs.read_radiograph(pair.hr).as_float()
                lr = radiographs.read_radiograph(pair.lr).as_float()
                lr_up = infer.baseline_array(lr, scale=hr.shape[0] // lr.shape[0])
                sr = radiographs.read_radiograph(
                    sr_path(work, method, str(dataset), pair.image, str(condition))
                ).as_float()
                orig.append(metrics.image_metrics(hr, lr_up, data_range=1.0))
                srs.append(metrics.image_metrics(sr, lr_up, data_range=1.0))
            for metric in ("psnr", "ssim", "mse"):
                a = float(np.mean([o[metric] for o in orig]))
                b = float(np.mean([s[metric] for s in srs]))
                rows.append(
                    {
                        "dataset": dataset_label(str(dataset)),
                        "condition": condition,
                        "method": method.name,
                        "metric": metric.upper(),
                        "Between Original & LR": a,
                        "Between SR & LR": b,
                        "Improvement (%)": (b - a) / a * 100,
                        "differs_from_paper": method.paper_gaps_text,
                    }
                )
    return pd.DataFrame(rows)
