"""Rounding the study's tables for printing and for diffs that do not churn (:func:`round_table`):
values to a fixed number of decimals, p-values to significant figures.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd


def _is_p_value(column: str) -> bool:
    return column in ("p_value", "p_holm") or column.endswith("_p")


def round_table(
    table: pd.DataFrame,
    digits: int | Mapping[str, int] = 3,
    *,
    default_digits: int = 4,
    p_significant: int = 3,
) -> pd.DataFrame:
    """A copy with float columns rounded, for printing and for diffs that do not churn.

    ``digits`` is the number of decimals of every float column, or a mapping from metric to
    decimals for a long table with a ``metric`` column (such as
    :mod:`cxrsr_utils.stats.image_metrics`'
    summary and comparison tables: each row rounded by its metric, ``default_digits`` for
    metrics not in the mapping). P-value columns (``p_value``, ``p_holm``, ``*_p``) keep
    ``p_significant`` significant figures instead, so small p-values are not rounded to 0.
    """
    out = table.copy()
    floats = [c for c in out.columns if pd.api.types.is_float_dtype(out[c])]
    values = [c for c in floats if not _is_p_value(str(c))]
    if isinstance(digits, Mapping):
        if "metric" not in out.columns:
            raise ValueError("Per-metric digits need a 'metric' column (a long table).")
        for metric, index in out.groupby("metric", sort=False).groups.items():
            out.loc[index, values] = out.loc[index, values].round(
                digits.get(metric, default_digits)
            )
    else:
        out[values] = out[values].round(digits)
    for column in floats:
        if _is_p_value(str(column)):
            out[column] = [float(f"{p:.{p_significant}g}") for p in out[column]]
    return out
