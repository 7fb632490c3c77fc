"""How much do the study's results depend on the CPU's instruction set?

Runs the quick study three times into scratch folders: twice as this machine runs it (is a
rerun identical?) and once with every library limited to AVX2 kernels
(``cxrsr_utils.core.cpu.AVX2_ONLY_ENV``: oneDNN, torch, MKL, XLA, numpy, OpenBLAS, OpenCV), which is
what an AVX2-only machine computes. Then it compares every numeric column of every table and
writes the largest differences to ``reports/bench/cpu_portability.{json,md}``: the measured
basis of the tolerances in ``cxrsr_utils.reporting.reference``.

    .venv/bin/python bench/cpu_portability.py            # ~3 study runs (15-60 min)
    .venv/bin/python bench/cpu_portability.py --reuse A B C   # compare existing output roots
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cxrsr_utils.core import cpu  # noqa: E402
from cxrsr_utils.core.atomic import write_text  # noqa: E402
from cxrsr_utils.reporting import reference  # noqa: E402
from cxrsr_utils.reporting.files import markdown_table  # noqa: E402

RUNS = ("native", "native (repeat)", "AVX2 kernels")
# Seconds per iteration in the loss logs: how long, not what was computed.
TIMING_COLUMNS = ("time_s", "data_time_s", "elapsed_s")


def run_study(out_root: Path, limit_isa: bool, profile: str) -> float:
    """One whole study into ``out_root``; returns its wall time in seconds."""
    env = {**os.environ, "CXRSR_OUTPUT_ROOT": str(out_root)}
    if limit_isa:
        env |= cpu.AVX2_ONLY_ENV
    t0 = time.time()
    subprocess.run(
        [sys.executable, "-m", "cxrsr_utils.runner", "--profile", profile],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return time.time() - t0


def tables_of(out_root: Path, profile: str) -> Path:
    """The tables folder of a run written under ``out_root`` (or by a version before the run
    folder moved under ``work/``)."""
    tables = out_root / "work" / profile / "reports" / "tables"
    return tables if tables.is_dir() else out_root / "reports" / profile / "tables"


def _recorded_wall(out_root: Path, profile: str) -> float | None:
    manifest = tables_of(out_root, profile).parent / "run_manifest.json"
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text())["wall_seconds"]["total"]


def numeric_differences(a: Path, b: Path, profile: str) -> pd.DataFrame:
    """Largest absolute difference of every numeric column between two runs' tables."""
    rows = []
    for fa in sorted(tables_of(a, profile).glob("*.csv")):
        fb = tables_of(b, profile) / fa.name
        if not fb.is_file():
            continue
        da, db = pd.read_csv(fa), pd.read_csv(fb)
        if da.shape != db.shape:
            rows.append(
                {
                    "table": fa.stem,
                    "column": "(shape)",
                    "max_abs_diff": np.nan,
                    "note": f"{da.shape} vs {db.shape}",
                }
            )
            continue
        metric_col = (reference.check_for(fa.stem) or reference.TableCheck()).metric_column
        for col in (c for c in da.columns if c not in TIMING_COLUMNS):

            def numeric(c: pd.Series) -> bool:
                return pd.api.types.is_numeric_dtype(c) and not pd.api.types.is_bool_dtype(c)

            if not (numeric(da[col]) and numeric(db[col])):
                same = (reference.labels(da[col]) == reference.labels(db[col])).all()
                if not same:
                    rows.append(
                        {
                            "table": fa.stem,
                            "column": col,
                            "max_abs_diff": np.nan,
                            "note": "labels differ",
                        }
                    )
                continue
            diff = (da[col] - db[col]).abs()
            groups = da[metric_col] if metric_col and col != metric_col else None
            if groups is None:
                rows.append(
                    {"table": fa.stem, "column": col, "max_abs_diff": float(diff.max()), "note": ""}
                )
            else:
                for metric, part in diff.groupby(groups):
                    rows.append(
                        {
                            "table": fa.stem,
                            "column": f"{col} [{metric}]",
                            "max_abs_diff": float(part.max()),
                            "note": "",
                        }
                    )
    return pd.DataFrame(rows, columns=["table", "column", "max_abs_diff", "note"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument(
        "--reuse",
        nargs=3,
        type=Path,
        metavar=("NATIVE", "REPEAT", "AVX2"),
        help="output roots of earlier runs instead of running the study",
    )
    args = ap.parse_args(argv)
    walls: dict[str, float | None] = {}
    if args.reuse:
        roots = dict(zip(RUNS, args.reuse, strict=True))
        walls = {name: _recorded_wall(root, args.profile) for name, root in roots.items()}
    else:
        scratch = Path(tempfile.mkdtemp(prefix="cxrsr-cpu-portability-"))
        roots = {name: scratch / f"run{i}" for i, name in enumerate(RUNS)}
        for name, root in roots.items():
            print(f"[bench] study run: {name}", flush=True)
            walls[name] = round(run_study(root, name == "AVX2 kernels", args.profile), 1)
    repeat = numeric_differences(roots[RUNS[0]], roots[RUNS[1]], args.profile)
    isa = numeric_differences(roots[RUNS[0]], roots[RUNS[2]], args.profile)
    changed = isa[(isa.max_abs_diff > 0) | (isa.note != "")].copy()
    changed["max_abs_diff"] = changed.max_abs_diff.map(lambda v: float(f"{v:.3g}"))
    n_repeat = int(((repeat.max_abs_diff > 0) | (repeat.note != "")).sum())
    meta = {
        "cpu": cpu.describe(),
        "cpu_label": cpu.isa_label(),
        "profile": args.profile,
        "avx2_env": cpu.AVX2_ONLY_ENV,
        "wall_seconds": walls,
        "repeat_columns_differing": n_repeat,
        "avx2_differences": changed.to_dict(orient="records"),
    }
    out = ROOT / "reports" / "bench"
    write_text(out / "cpu_portability.json", json.dumps(meta, indent=2, default=str) + "\n")
    write_text(out / "cpu_portability.md", render(meta, changed, n_repeat))
    print(markdown_table(changed))
    return 0


def render(meta: dict, changed: pd.DataFrame, n_repeat: int) -> str:
    """The Markdown report."""
    walls = ", ".join(f"{k} {v} s" for k, v in meta["wall_seconds"].items() if v is not None)
    env = " ".join(f"{k}={v}" for k, v in meta["avx2_env"].items())
    return (
        "# Results across CPU instruction sets\n\n"
        f"Quick profile run three times on {meta['cpu_label']}: twice as the machine runs it, "
        f"once limited to AVX2 kernels (`{env}`)."
        + (f" Wall times: {walls}." if walls else "")
        + "\n\n"
        f"- **Rerun on the same machine**: {n_repeat} columns differ "
        "(0: every table is identical to the last digit; the loss logs' seconds per "
        "iteration are left out of both comparisons).\n"
        f"- **AVX2 kernels against AVX-512**: the columns below differ; every other column of "
        "every table is identical. Largest absolute difference per column (long tables per "
        "metric):\n\n" + markdown_table(changed) + "\n"
        "The tolerances in `cxrsr_utils/reporting/reference.py` (`TOLERANCES`) are set to at "
        "least twice "
        "these for the SR metrics; the classifier's numbers are not compared across machines.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
