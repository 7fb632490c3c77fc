"""How long the mirror study takes on an AVX2-only CPU: measured in parts, projected whole.

A full ``make study PROFILE=mirror`` takes about an hour on 2 AVX-512 cores with native bf16.
An AVX2-only CPU has no native bf16, so ``auto`` precision trains and infers in fp32 there,
and a whole run under AVX2 kernels would take longer than a working session. This measures,
with every library limited to AVX2 kernels (``cxrsr_utils.core.cpu.AVX2_ONLY_ENV``, what an
AVX2-only machine computes, on this machine's cores):

- notebooks 01 and 02 whole, as the mirror profile runs them;
- notebook 03 for a few iterations of every variant (the discriminator warm-up set to 0, so
  every iteration is a full generator + discriminator step): seconds per iteration from the
  loss logs, against the same variant's full-step iterations in the native run's logs;
- notebook 04's and 05's dominant work alone, in both settings: one network super-resolving
  the profile's two LR sizes with its inference settings, and one epoch of the Keras CNN;

and projects each notebook of the native run (its manifest) by the measured ratio. Writes
``reports/bench/mirror_cpu.{json,md}``.

    .venv/bin/python bench/mirror_cpu.py                # ~15 min; needs a finished native run
    .venv/bin/python bench/mirror_cpu.py --native-run work/mirror --iters 12
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPORTS, ROOT

from cxrsr_utils.core import cpu  # noqa: E402
from cxrsr_utils.core.atomic import write_text  # noqa: E402
from cxrsr_utils.reporting.files import markdown_table  # noqa: E402

PROFILE = "mirror"
NOTEBOOKS = ("01", "02", "03", "04", "05")


def _env(avx2: bool, **extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    return env | cpu.AVX2_ONLY_ENV if avx2 else env


def short_study(root: Path, iters: int) -> dict[str, Any]:
    """Notebooks 01-03 of the mirror profile under AVX2 kernels into ``root``, fine-tuning
    ``iters`` iterations; the notebooks' seconds and each variant's seconds per iteration."""
    sets = [
        f"finetune.total_iter={iters}",
        f"finetune.val_freq={iters}",
        f"finetune.save_checkpoint_freq={iters}",
        "finetune.net_d_init_iters=0",
        "finetune.print_freq=1",
    ]
    cmd = [sys.executable, "-m", "cxrsr_utils.runner", "--profile", PROFILE, "--only"]
    cmd += ["01", "02", "03", "--set", *sets]
    subprocess.run(cmd, cwd=ROOT, env=_env(True, CXRSR_OUTPUT_ROOT=str(root)), check=True)
    run = root / "work" / PROFILE
    manifest = json.loads((run / "reports" / "run_manifest.json").read_text())
    return {
        "seconds": _per_notebook(manifest),
        "s_per_iter": iteration_seconds(run, first=2),
        "cpu": manifest["device"]["cpu"],
    }


def _per_notebook(manifest: dict[str, Any]) -> dict[str, float]:
    seconds = manifest["wall_seconds"]["per_notebook"]
    return {name[:2]: float(s) for name, s in seconds.items()}


def iteration_seconds(run: Path, first: int) -> dict[str, float]:
    """Median seconds per iteration of each variant from ``iter >= first`` of its loss log."""
    import pandas as pd

    out = {}
    for log in sorted((run / "reports" / "tables").glob("03_loss_log_*.csv")):
        table = pd.read_csv(log)
        out[log.stem.removeprefix("03_loss_log_")] = float(
            table.loc[table["iter"] >= first, "time_s"].median()
        )
    return out


def unit_times(precision: str | None = None, cnn: bool = True) -> dict[str, Any]:
    """Seconds for notebook 04's and 05's units, in this process's kernel setting: one SR
    input of each LR size (mirror inference settings, inputs of one size batched as 04 runs
    them; ``precision`` instead of the profile's where given) and, with ``cnn``, one epoch of
    the CNN on 64 images."""
    import dataclasses

    import numpy as np

    from cxrsr_utils.classification import network as classifier
    from cxrsr_utils.core.params import load_params
    from cxrsr_utils.finetune.inference_settings import evaluate_infer_options
    from cxrsr_utils.sr import infer
    from cxrsr_utils.sr import networks as models

    params = load_params(PROFILE)
    batch = params.evaluate.batch_size
    options = evaluate_infer_options(params)
    if precision:
        options = dataclasses.replace(options, precision=precision)
    net, _ = models.load_pretrained_generator()
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"precision": options.precision, "backend": options.describe_backend()}
    for side, n in ((64, 8), (128, 4)):
        images = [rng.random((side, side), dtype=np.float32) for _ in range(n)]
        infer.upscale_arrays(images[:batch], net, options, scale=4)  # warm-up
        start = time.perf_counter()
        infer.upscale_arrays(images, net, options, scale=4)
        out[f"sr_{side}"] = (time.perf_counter() - start) / n
    if not cnn:
        return out
    model = classifier.build_classifier()
    x = rng.random((64, classifier.IMAGE_SIZE, classifier.IMAGE_SIZE, 3), dtype=np.float32)
    y = rng.integers(0, 2, 64).astype(np.float32)
    model.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0)  # warm-up (graph tracing)
    start = time.perf_counter()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    out["cnn_epoch"] = time.perf_counter() - start
    return out


def units_in(avx2: bool) -> dict[str, Any]:
    """:func:`unit_times` in a fresh process, natively or with AVX2 kernels only."""
    done = subprocess.run(
        [sys.executable, __file__, "--units-json"],
        cwd=ROOT,
        env=_env(avx2),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def project(native_run: Path, short: dict[str, Any], units: dict[str, dict]) -> dict[str, Any]:
    """Each notebook's AVX2 seconds: measured (01, 02) or the native run's times the ratio."""
    manifest = json.loads((native_run / "reports" / "run_manifest.json").read_text())
    native = _per_notebook(manifest)
    params = manifest["params"]
    warm = int(params["finetune"]["net_d_init_iters"])
    native_iter = iteration_seconds(native_run, first=warm + 2)
    ratio03 = statistics.mean(short["s_per_iter"][v] / native_iter[v] for v in native_iter)
    nat, avx = units["native"], units["avx2"]
    counts = _sr_counts(native_run, params)
    work04 = {k: sum(u[f"sr_{s}"] * n for s, n in counts.items()) for k, u in units.items()}
    ratios = {
        "03": ratio03,
        "04": work04["avx2"] / work04["native"],
        "05": avx["cnn_epoch"] / nat["cnn_epoch"],
    }
    rows = []
    for nb in NOTEBOOKS:
        if nb in short["seconds"] and nb not in ratios:
            avx2_s, how = short["seconds"][nb], "measured whole under AVX2 kernels"
        else:
            avx2_s, how = native[nb] * ratios[nb], f"native x {ratios[nb]:.2f}"
        rows.append({"notebook": nb, "native_s": native[nb], "avx2_s": avx2_s, "how": how})
    return {
        "native_commit": manifest["git_commit"],
        "native_cpu": manifest["device"]["cpu"],
        "ratios": ratios,
        "native_s_per_iter": native_iter,
        "avx2_s_per_iter": short["s_per_iter"],
        "sr_inputs_per_network": counts,
        "rows": rows,
        "native_total_s": sum(r["native_s"] for r in rows),
        "avx2_total_s": sum(r["avx2_s"] for r in rows),
    }


def _sr_counts(native_run: Path, params: dict[str, Any]) -> dict[int, int]:
    """How many LR inputs of each side one network super-resolves in notebook 04 (``params``:
    the run manifest's)."""
    import pandas as pd

    per_image = pd.read_csv(native_run / "reports" / "tables" / "04_per_image.csv")
    one = per_image[per_image["method"] == "pretrained"]
    sides = {
        "nih": params["nih"]["eval_hr_size"] // 4,
        "kermany": params["kermany"]["hr_size"] // 4,
    }
    return {int(side): int((one["dataset"] == d).sum()) for d, side in sides.items()}


def report(result: dict[str, Any]) -> str:
    """The markdown page of :func:`project`'s result."""
    import pandas as pd

    proj = result["projection"]
    rows = (
        pd.DataFrame(proj["rows"])
        .round({"native_s": 0, "avx2_s": 0})
        .rename(columns={"native_s": "native run (s)", "avx2_s": "AVX2 kernels (s)"})
    )
    iters = pd.DataFrame(
        {"native s/iter": proj["native_s_per_iter"], "AVX2 s/iter": proj["avx2_s_per_iter"]}
    ).rename_axis("variant")
    units = pd.DataFrame(result["units"]).T.rename_axis("setting")
    limits = " ".join(f"{k}={v}" for k, v in cpu.AVX2_ONLY_ENV.items())
    return "\n".join(
        [
            "# The mirror study on an AVX2-only CPU (projected from measured parts)",
            "",
            f"Native run: commit {proj['native_commit'][:7]} on {cpu.isa_label()} "
            f"({proj['native_total_s'] / 60:.0f} min). The AVX2 parts ran on the same machine "
            f"with `{limits}`: fp32 wherever the profile says `auto` (no native bf16).",
            "",
            f"**Projected AVX2-only study: {proj['avx2_total_s'] / 60:.0f} min** "
            f"({proj['avx2_total_s'] / proj['native_total_s']:.1f}x the native run).",
            "",
            markdown_table(rows),
            "",
            f"Fine-tuning, full generator + discriminator steps (AVX2: a {result['iters']}-"
            "iteration run, median of iterations 2 on; native: the full run's iterations after "
            "the discriminator warm-up), seconds per iteration:",
            "",
            markdown_table(iters.reset_index(), floatfmt=".3g"),
            "",
            "Units in seconds (SR: per LR input of that side, batched as notebook 04 runs them; "
            f"LR inputs per network {proj['sr_inputs_per_network']}; CNN: one epoch on 64 "
            "images of 300 x 300):",
            "",
            markdown_table(units.reset_index(), floatfmt=".3g"),
            "",
            "A projection, not a run: the non-network work of notebooks 04 and 05 (metrics, "
            "figures, bootstrap) is assumed to scale like their networks.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--native-run", default=str(ROOT / "work" / PROFILE))
    parser.add_argument("--iters", type=int, default=12)
    parser.add_argument(
        "--from-json", action="store_true", help="write the page again from the saved JSON"
    )
    parser.add_argument("--units-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.units_json:
        print(json.dumps(unit_times()))
        return
    if args.from_json:
        saved = json.loads((REPORTS / "mirror_cpu.json").read_text())
        write_text(REPORTS / "mirror_cpu.md", report(saved))
        return
    native_run = Path(args.native_run)
    if not (native_run / "reports" / "run_manifest.json").is_file():
        raise SystemExit(f"No finished run at {native_run}: run make study PROFILE=mirror first.")
    units = {"native": units_in(False), "avx2": units_in(True)}
    with tempfile.TemporaryDirectory(prefix="cxrsr-mirror-avx2-") as root:
        short = short_study(Path(root), args.iters)
    result = {"iters": args.iters, "units": units, "short_run": short}
    result["projection"] = project(native_run, short, units)
    REPORTS.mkdir(parents=True, exist_ok=True)
    write_text(REPORTS / "mirror_cpu.json", json.dumps(result, indent=1) + "\n")
    write_text(REPORTS / "mirror_cpu.md", report(result))
    print(report(result))


if __name__ == "__main__":
    main()
