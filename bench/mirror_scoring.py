"""Notebook 04 of the mirror profile scoring in fp32 on this CPU: projected from measured units.

Issue 20 asks for notebook 04 of the mirror profile, every network scored in fp32, in at most
25 minutes on 2 AVX-512 cores. Its time is dominated by the networks: each one super-resolves
the profile's LR inputs (``bench/mirror_cpu.py`` counted them per network from the published
run: NIH 128² and Kermany 64², both conditions). This measures, in this process, seconds per
LR input of each side with the mirror profile's inference settings (batch, channels_last,
pre_pad; backend ``auto``) in fp32 and, where the CPU has native bf16, in bf16; and projects
the published run's notebook 04 (``reports/mirror/run_manifest.json``, which ran torch bf16
on an AMD EPYC; its units are in ``reports/bench/mirror_cpu.json``) by the ratio of the
networks' work. A projection, not a run: the non-network work of notebook 04 (metrics,
figures, bootstrap) is assumed to scale like its networks, which over-estimates it on a
faster CPU.

Output: ``reports/bench/mirror_scoring.{md,json}`` (one section per CPU kind). Run:
``.venv/bin/python bench/mirror_scoring.py`` (about 2 minutes).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from _common import REPORTS, ROOT, stored_runs, table, write_report
from mirror_cpu import unit_times

from cxrsr_utils.core import cpu  # noqa: E402

TARGET_MIN = 25.0


def published() -> dict[str, Any]:
    """The published mirror run's notebook-04 seconds, CPU, SR units and inputs per network."""
    manifest = json.loads((ROOT / "reports" / "mirror" / "run_manifest.json").read_text())
    seconds = manifest["wall_seconds"]["per_notebook"]
    nb04 = next(float(s) for name, s in seconds.items() if name.startswith("04"))
    bench = json.loads((REPORTS / "mirror_cpu.json").read_text())
    return {
        "commit": manifest["git_commit"],
        "cpu": manifest["device"]["cpu"].get("model"),
        "nb04_s": nb04,
        "units": bench["units"]["native"],
        "inputs": {int(k): int(v) for k, v in bench["projection"]["sr_inputs_per_network"].items()},
    }


def work(units: dict[str, Any], inputs: dict[int, int]) -> float:
    """One network's SR seconds over notebook 04's inputs."""
    return sum(units[f"sr_{side}"] * n for side, n in inputs.items())


def measure() -> dict[str, Any]:
    """Units in fp32 (and bf16 where native) here, and notebook 04 projected from them."""
    pub = published()
    base = work(pub["units"], pub["inputs"])
    rows = []
    for precision in ("fp32", "bf16") if cpu.native_bf16() else ("fp32",):
        units = unit_times(precision, cnn=False)
        projected = pub["nb04_s"] * work(units, pub["inputs"]) / base
        rows.append({**units, "work_s": work(units, pub["inputs"]), "nb04_s": projected})
        print(rows[-1], flush=True)
    return {
        "cpu_label": cpu.isa_label(),
        "cpu_kind": cpu.cpu_kind(),
        "date": time.strftime("%Y-%m-%d"),
        "published": pub,
        "published_work_s": base,
        "rows": rows,
    }


def _sides(inputs: dict[Any, int]) -> dict[int, int]:
    """Inputs per LR side with int sides (JSON stores the keys as strings)."""
    return {int(side): int(n) for side, n in inputs.items()}


def section(result: dict[str, Any]) -> list[str]:
    """One CPU kind's table."""
    pub = result["published"]
    body = [
        [
            r["precision"],
            r["backend"],
            f"{r['sr_64']:.3f}",
            f"{r['sr_128']:.3f}",
            f"{r['work_s']:.0f}",
            f"{r['nb04_s'] / 60:.1f}",
            ("yes" if r["nb04_s"] / 60 <= TARGET_MIN else "no")
            if r["precision"] == "fp32"
            else "—",
        ]
        for r in result["rows"]
    ]
    return [
        f"## {result['cpu_label']} (kind `{result['cpu_kind']}`), {result['date']}",
        "",
        f"Published run: commit {pub['commit'][:7]} on {pub['cpu']}, notebook 04 "
        f"{pub['nb04_s'] / 60:.1f} min, torch {pub['units']['precision']}: "
        f"{pub['units']['sr_64']:.3f} s per 64² input, {pub['units']['sr_128']:.3f} s per 128²; "
        f"one network's SR work {result['published_work_s']:.0f} s over "
        f"{_sides(pub['inputs'])} inputs.",
        "",
        *table(
            [
                "precision",
                "backend",
                "s per 64² input",
                "s per 128² input",
                "one network's SR (s)",
                "notebook 04 projected (min)",
                f"fp32 within {TARGET_MIN:.0f} min",
            ],
            body,
        ),
        "",
        *(
            f"- fp32 with {r['backend']}: notebook 04 needs {r['nb04_s'] / 60 / TARGET_MIN:.2f}x "
            f"less network work to fit {TARGET_MIN:.0f} min on this CPU (fewer networks or "
            "inputs: a design choice of the study's plan, not a speed-up)."
            for r in result["rows"]
            if r["precision"] == "fp32" and r["nb04_s"] / 60 > TARGET_MIN
        ),
        "",
    ]


def main() -> None:
    runs = stored_runs("mirror_scoring")
    if "--report-only" in sys.argv:
        print(report(runs))
        return
    result = measure()
    runs[result["cpu_kind"]] = result
    print(report(runs))


def report(runs: dict[str, dict[str, Any]]) -> str:
    """Write reports/bench/mirror_scoring.{json,md}, one section per CPU kind."""
    lines = ["# Notebook 04 of the mirror profile, scoring in fp32 (projected)", ""]
    lines += [(__doc__ or "").split("\n\n")[1].replace("\n", " "), ""]
    for key in sorted(runs):
        lines += section(runs[key])
    return write_report("mirror_scoring", {"runs": runs}, lines)


if __name__ == "__main__":
    main()
