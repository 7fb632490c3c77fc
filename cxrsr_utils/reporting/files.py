"""Writing a run's tables (CSV + Markdown) and figures (PNG), atomically."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cxrsr_utils.core.atomic import atomic_path, write_text

if TYPE_CHECKING:  # matplotlib is imported only by what draws
    from matplotlib.figure import Figure


def markdown_table(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (no extra dependency)."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v).replace("|", "\\|").replace("\n", " ")

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def save_table(df: pd.DataFrame, folder: Path, name: str, markdown: bool = True) -> Path:
    """Write ``name.csv`` (and ``name.md`` unless ``markdown`` is False) into ``folder``."""
    csv = folder / f"{name}.csv"
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")
    if markdown:
        write_text(folder / f"{name}.md", markdown_table(df))
    return csv


def save_figure(fig: Figure, folder: Path, name: str, dpi: int = 110) -> Path:
    """Save a matplotlib figure as ``name.png`` (no timestamp metadata, so reruns are identical)."""
    target = folder / f"{name}.png"
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return target
