"""``bench/training.py``'s report: projections, the Markdown tables, merging device results.

:func:`write_report` turns ``reports/bench/training.json`` (a ``cpu`` and a ``gpu`` section, each
the result of one ``measure``) into ``reports/bench/training.md``; :func:`merge` adds results
measured elsewhere (a GPU machine) to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _common import REPORTS
from _training_step import CHECKPOINT_FREQ, LOADER_WORKERS, PAPER_BATCH, PAPER_GT, PAPER_ITERS


def summarise(rows: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """Speed-up over realesrgan's step and the projection to the paper's 6480 iterations."""
    base = next(
        (r for r in rows if r["label"].startswith("realesrgan") and r["status"] == "ok"), None
    )
    scale = PAPER_BATCH / settings["batch"]
    for row in rows:
        if row["status"] != "ok":
            continue
        if base:
            row["speedup_vs_realesrgan"] = base["iteration_s"] / row["iteration_s"]
        # Data loading runs in LOADER_WORKERS processes beside the step; it only counts when
        # those cannot keep up.
        per_iter = max(row["iteration_s"], row["data_s"] / LOADER_WORKERS)
        minutes = PAPER_ITERS * per_iter / 60
        if settings["gt_size"] == PAPER_GT and settings["batch"] == PAPER_BATCH:
            row["projected_6480_min"] = minutes
            if "checkpoint_s" in row:
                row["projected_checkpoints_min"] = (
                    (PAPER_ITERS // CHECKPOINT_FREQ + 1) * row["checkpoint_s"] / 60
                )
        else:  # a rough bound only: small sizes use the machine less well than large ones
            row["projected_6480_min_if_linear"] = (
                minutes * scale * (PAPER_GT / settings["gt_size"]) ** 2
            )


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` decimals, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _main_row(row: dict[str, Any], gpu: bool) -> str:
    """One configuration's line of the main table (a failed one says why)."""
    if row["status"] != "ok":
        return (
            f"| {row['label']} | {row['status']}: "
            f"{row.get('note', '').splitlines()[0][:120]} |" + " |" * 7
        )
    speed = row.get("speedup_vs_realesrgan")
    memory = row.get("peak_gpu_allocated_mib") if gpu else row.get("peak_rss_mb")
    minutes = (
        row.get("projected_6480_min") if gpu else (row["projected_6480_min_if_linear"] / 60)
    )  # hours, on a CPU
    cells = [
        row["label"],
        fmt(row["data_s"]),
        fmt(row["degrade_s"]),
        f"{fmt(row['step_s'])} [{fmt(row['step_spread_s'][0])}–{fmt(row['step_spread_s'][1])}]",
        fmt(row["iteration_s"]),
        f"{speed:.2f}×" if speed else "–",
        fmt(row["first_iteration_s"], 2),
        fmt(memory, 0),
        fmt(minutes, 1),
    ]
    return "| " + " | ".join(cells) + " |"


def _main_table(result: dict[str, Any]) -> str:
    gpu = result["settings"]["device"] == "cuda"
    head = [
        "configuration",
        "data load, 1 process (s)",
        "degradation (s)",
        "step (s) [min–max]",
        "iteration (s)",
        "vs realesrgan step",
        "first iteration (s)",
        "peak GPU alloc (MiB)" if gpu else "peak RSS (MB)",
        "6480 iterations (min)" if gpu else "6480 at paper size, if linear (h)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [_main_row(row, gpu) for row in result["rows"]]
    return "\n".join(lines)


def _checkpoint_note(rows: list[dict[str, Any]]) -> str:
    """The first timed checkpoint and what the paper profile's checkpoints cost ('' if none)."""
    saves = [r for r in rows if r["status"] == "ok" and "checkpoint_s" in r]
    if not saves:
        return ""
    n = PAPER_ITERS // CHECKPOINT_FREQ + 1
    return (
        f"\n\nOne checkpoint (net_g with its EMA, net_d, training state; each file "
        f"written to a temporary file, loaded back, renamed): "
        f"{saves[0]['checkpoint_s']:.2f} s, {saves[0]['checkpoint_mb']:.0f} MB "
        f"({saves[0]['label']}); the paper profile writes {n} "
        f"({n * saves[0]['checkpoint_s'] / 60:.2f} min), keeping one at a time."
    )


def _parts_table(rows: list[dict[str, Any]]) -> str:
    """Each part of the step timed alone, against the full step ('' if none was timed)."""
    parts_rows = [
        (r["label"], r["components_s"]) for r in rows if r["status"] == "ok" and "components_s" in r
    ]
    if not parts_rows:
        return ""
    names = list(parts_rows[0][1])
    table = "\n\nParts of the step, each timed alone on the last batch (seconds):\n\n"
    table += "| configuration | " + " | ".join(names) + " | sum of parts | full step |\n"
    table += "|" + "---|" * (len(names) + 3) + "\n"
    steps = {r["label"]: r["step_s"] for r in rows if r["status"] == "ok"}
    for label, parts in parts_rows:
        table += (
            f"| {label} | "
            + " | ".join(fmt(parts[n]) for n in names)
            + f" | {fmt(sum(parts.values()))} | {fmt(steps[label])} |\n"
        )
    return table


def markdown_rows(result: dict[str, Any]) -> str:
    """The main table and the per-part table of one device's result."""
    rows = result["rows"]
    return _main_table(result) + _checkpoint_note(rows) + _parts_table(rows)


def write_report(report: dict[str, Any], folder: Path = REPORTS) -> None:
    """training.{json,md} in ``folder`` (``reports/bench``) from the CPU result and, when there is
    one, the GPU's."""
    from cxrsr_utils.core.atomic import write_text

    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "training.json", json.dumps(report, indent=1))
    text = [
        "# Fine-tuning speed: our step against realesrgan's own step\n",
        "Written by `bench/training.py` (see its docstring for what is timed and how). One "
        "iteration of the paper's recipe: RealESRGAN_x4plus generator (random init), "
        "UNetDiscriminatorSN and VGG19 as random-weight stand-ins with the real architectures, "
        "perceptual + GAN + L1 losses, EMA 0.999, Real-ESRGAN degradation, the mirror's NIH "
        "radiographs at full size. Times are medians in seconds; 'iteration' = degradation + "
        "step (data loading runs in the loader's worker processes beside it); 'vs realesrgan "
        "step' = realesrgan's iteration time over this one's. Each configuration ran in a "
        "fresh process.\n",
    ]
    cpus = sorted(k for k in report if k.startswith("cpu-") and isinstance(report[k], dict))
    for key in [*(cpus or ["cpu"]), "gpu"]:
        result = report.get(key)
        title = "GPU" if key == "gpu" else f"CPU: {key.removeprefix('cpu-')}"
        if not result:
            text.append(f"## {title}\n\n{report.get(key + '_note', 'Not measured.')}\n")
            continue
        text.append(f"## {title}\n\n{describe(result)}\n\n{markdown_rows(result)}\n")
        text.extend(f"- {note}\n" for note in result.get("notes", []))
    write_text(folder / "training.md", "\n".join(text))


def describe(result: dict[str, Any]) -> str:
    """One line naming the machine, the software and the sizes."""
    m, st = result["machine"], result["settings"]
    where = (
        f"{m['gpu']} ({m['gpu_memory_gib']} GiB, CUDA {m['cuda']}, cuDNN TF32 "
        f"{'on' if m['cudnn_tf32'] else 'off'}), host {m['cpu']}"
        if "gpu" in m
        else f"{m['cpu']}, {m['cpus']} cores, native bf16: "
        f"{'yes (' + ', '.join(m['bf16_flags']) + ')' if m['native_bf16'] else 'no'}, "
        f"load average {m['load_average_at_start']:.2f} at the start, OMP_WAIT_POLICY "
        f"{m.get('omp_wait_policy', 'PASSIVE (then the Makefile default)')}"
    )
    return (
        f"{where}; torch {result['torch']}, basicsr {result['basicsr']}, realesrgan "
        f"{result['realesrgan']}; gt_size {st['gt_size']}, batch {st['batch']}, "
        f"{st['warmup']} warm-up + {st['reps']} timed iterations, parts timed "
        f"{st['parts_reps']}×; {result['date']}."
    )


# The CPU runs' default patch (bench/training.py); another size gets its own section.
CPU_DEFAULT_GT = 64


def section_key(result: dict[str, Any]) -> str:
    """The report's section for a result: ``gpu``, or ``cpu-<kind>`` (one per CPU kind,
    cxrsr_utils.core.cpu.cpu_kind, so a run on one kind keeps the others' rows), with
    ``, gt <size>`` for a patch size other than the CPU default."""
    if result["settings"]["device"] == "cuda":
        return "gpu"
    machine = result["machine"]
    # Results from before the kind was recorded: native bf16 there meant AVX512_BF16.
    kind = machine.get("cpu_kind") or (machine["bf16_flags"] or ["avx2"])[-1]
    gt = result["settings"]["gt_size"]
    return f"cpu-{kind}" + ("" if gt == CPU_DEFAULT_GT else f", gt {gt}")


def legacy_sections(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with a pre-kind ``cpu`` section moved under its ``cpu-<kind>`` key."""
    if isinstance(report.get("cpu"), dict):
        legacy = report.pop("cpu")
        report[section_key(legacy)] = legacy
    return report


def merge(report: dict[str, Any], results: list[dict[str, Any]], notes: list[str]) -> None:
    """Put device results into the report: the first replaces that device's section, later
    ones measured on the same machine with the same settings add their rows to it."""
    first = results[0]
    key = section_key(first)
    for more in results[1:]:
        same = more["settings"] == first["settings"] and more["machine"].get("gpu") == first[
            "machine"
        ].get("gpu")
        if not same:
            raise SystemExit("Results to merge differ in machine or settings; merge them apart.")
        known = {r["label"] for r in first["rows"]}
        first["rows"] += [r for r in more["rows"] if r["label"] not in known]
    summarise(first["rows"], first["settings"])
    first["notes"] = list(first.get("notes", [])) + list(notes)
    first["runs"] = len(results)
    report[key] = first
