"""The ``cxrsr`` command: argument parsing and what is printed; the work is done elsewhere.

``cxrsr study`` runs the study (:mod:`cxrsr_utils.runner`), ``cxrsr upscale`` upscales a
clinic's radiographs (:mod:`cxrsr_utils.upscaling.batch`), ``cxrsr sources`` lists every
external file and its state (:mod:`cxrsr_utils.external.inventory`). Exit status: 0 all fine, 1
some input (or the study) failed, 2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from cxrsr_utils.core.errors import CxrsrError
from cxrsr_utils.study_options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    add_study_options,
)

if TYPE_CHECKING:
    from cxrsr_utils.images.deidentify import Deidentifier
    from cxrsr_utils.sr.upscaler import Model
    from cxrsr_utils.upscaling.inputs import Inputs


STUDY_EXAMPLE = """example:
  cxrsr study --profile quick
  cxrsr study --profile quick --set finetune.total_iter=200 --only 03 04
"""
UPSCALE_EXAMPLE = """examples:
  cxrsr upscale ../shared/mirror/data/nih-sample/images/00000211_000.png -o sr/
  cxrsr upscale scans/ 'more/*.dcm' -o sr/ --model paper --audit
  cxrsr upscale cxr.png -o quick/ --model bicubic     # the classical baseline, in seconds
  cxrsr upscale archive/ -o share/ --anonymize        # PS3.15 basic profile, pseudonym names

formats: PNG (8/16-bit) and GIF -> PNG, JPEG -> PNG (lossless), TIFF -> TIFF, DICOM -> DICOM
(derived series). Each output records the model, its SHA-256, scale, precision, tiling and the
input's SHA-256; manifest.json beside the outputs has one row per input. Inputs are never
overwritten; a re-run skips what this model already made.
"""
SOURCES_EXAMPLE = """example:
  cxrsr sources --verify
"""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="cxrsr", description="Super-resolve chest X-rays with a fine-tuned Real-ESRGAN."
    )
    sub = ap.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    study = sub.add_parser(
        "study", help="run the study's notebooks", epilog=STUDY_EXAMPLE, formatter_class=raw
    )
    add_study_options(study)

    up = sub.add_parser(
        "upscale",
        help="upscale radiographs (PNG, JPEG, TIFF, DICOM)",
        epilog=UPSCALE_EXAMPLE,
        formatter_class=raw,
    )
    _upscale_arguments(up)

    src = sub.add_parser(
        "sources",
        help="every external file, its state and where it goes",
        epilog=SOURCES_EXAMPLE,
        formatter_class=raw,
    )
    src.add_argument("--verify", action="store_true", help="check SHA-256 of every file found")
    return ap


def _upscale_arguments(up: argparse.ArgumentParser) -> None:
    """``cxrsr upscale``'s arguments, in the order its help lists them."""
    from cxrsr_utils.upscaling import audit

    up.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    up.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR")
    _model_arguments(up)
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _anonymize_arguments(up)
    up.add_argument(
        "--audit",
        nargs="?",
        type=_audit_threshold,
        const=audit.DEFAULT_THRESHOLD,
        metavar="THRESHOLD",
        help="LR-consistency PSNR in the manifest and a mask "
        "<name>.audit.png of where the output departs from bicubic by more than "
        f"THRESHOLD of the range (default {audit.DEFAULT_THRESHOLD})",
    )
    up.add_argument("--quiet", action="store_true", help="no progress bars")


def _model_arguments(up: argparse.ArgumentParser) -> None:
    """Which model upscales, and how the engine runs it (tiles, batch, device, precision)."""
    from cxrsr_utils.sr import upscaler

    up.add_argument(
        "--model",
        default="pretrained",
        help="pretrained, a fine-tuned variant of a study run, a .pth path, bicubic "
        "or lanczos (default: %(default)s)",
    )
    up.add_argument(
        "--run",
        type=Path,
        help="the study run (work/<profile>) of a variant (default: the newest under work/)",
    )
    up.add_argument(
        "--tile",
        type=int,
        default=upscaler.DEFAULT_TILE,
        help="tile side in input pixels, 0 for whole images (default %(default)s: "
        f"within {upscaler.TILED_MIN_DB:.0f} dB of untiled with the default pad)",
    )
    up.add_argument("--tile-pad", type=int, default=upscaler.DEFAULT_TILE_PAD)
    up.add_argument("--batch-size", type=int, default=1, help="windows per forward pass")
    up.add_argument("--device", default="cpu", help="cpu or cuda")
    up.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="auto: bf16 where the CPU has it natively (or on a GPU), else fp32",
    )


def _anonymize_arguments(up: argparse.ArgumentParser) -> None:
    """``--anonymize`` and the profile options that keep UIDs or dates."""
    up.add_argument(
        "--anonymize",
        action="store_true",
        help="de-identify DICOM outputs by PS3.15's Basic Application Level Confidentiality "
        "Profile (new UIDs, one new study/series per source study/series in a run; dates "
        "removed), and name every output and manifest row by a pseudonym (cxr-<SHA-256 of the "
        "input file>), never by the input's name",
    )
    up.add_argument(
        "--retain-uids",
        action="store_true",
        help="with --anonymize: the profile's Retain UIDs Option (keep every UID)",
    )
    up.add_argument(
        "--retain-dates",
        action="store_true",
        help="with --anonymize: the profile's Retain Longitudinal Temporal Information with "
        "Full Dates Option (keep every date and time)",
    )


def _audit_threshold(text: str) -> float:
    """``--audit``'s threshold: a fraction of the range in (0, 1), else a usage error."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the audit threshold is a fraction of the range between 0 and 1 "
            "(e.g. 0.05 for 5 %)"
        )
    return value


def _deidentifier(args: argparse.Namespace) -> Deidentifier | None:
    from cxrsr_utils.images import deidentify
    from cxrsr_utils.upscaling.batch import UsageError

    if (args.retain_uids or args.retain_dates) and not args.anonymize:
        raise UsageError("--retain-uids and --retain-dates are options of --anonymize; add it.")
    if not args.anonymize:
        return None
    return deidentify.Deidentifier(retain_uids=args.retain_uids, retain_dates=args.retain_dates)


def upscale_command(args: argparse.Namespace) -> int:
    """``cxrsr upscale``: returns the exit status."""
    from cxrsr_utils.upscaling import batch

    try:
        model, deidentifier = _upscale_setup(args)
    # The study's own errors (a bad option, model name or output folder) and a file system
    # that refuses are one line; any other exception is a bug and keeps its traceback.
    except (CxrsrError, OSError) as exc:
        print(f"cxrsr upscale: {exc}", file=sys.stderr)
        return EXIT_USAGE
    found = batch.collect_inputs(args.inputs)
    _print_plan(model, found)
    bar = tqdm(total=len(found.items), unit="file", desc="files", disable=args.quiet)

    def report(row: batch.Row) -> None:
        bar.update(1)
        if row.status == "failed":
            tqdm.write(f"cxrsr upscale: {row.error}", file=sys.stderr)

    try:
        rows = batch.run_batch(
            args.inputs,
            args.output,
            model,
            overwrite=args.overwrite,
            deidentifier=deidentifier,
            audit=args.audit,
            on_row=report,
            inputs=found,
        )
    except KeyboardInterrupt:
        bar.close()
        print(
            "cxrsr upscale: interrupted; finished outputs are kept and a re-run skips them.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except batch.UsageError as exc:
        print(f"cxrsr upscale: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except batch.ManifestError as exc:  # a full disk: one line, never a traceback
        bar.close()
        print(f"cxrsr upscale: {exc}", file=sys.stderr)
        return EXIT_FAILED
    bar.close()
    print(batch.summary(rows, args.output))
    print(f"manifest: {args.output / batch.MANIFEST}")
    return EXIT_FAILED if any(r.status == "failed" for r in rows) else 0


def _upscale_setup(args: argparse.Namespace) -> tuple[Model, Deidentifier | None]:
    """The model and the de-identifier the arguments ask for, after checking the output
    folder; a bad argument raises a CxrsrError or an OSError (a usage error)."""
    from cxrsr_utils.sr import infer, upscaler
    from cxrsr_utils.upscaling import batch

    options = infer.InferOptions(
        tile=args.tile,
        tile_pad=args.tile_pad,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        progress=not args.quiet,
    )
    deidentifier = _deidentifier(args)
    model = upscaler.load_model(args.model, options, run=args.run)
    batch.check_output_folder(args.output, args.inputs)
    return model, deidentifier


def _print_plan(model: Model, found: Inputs) -> None:
    """What will run, on stderr: the model, its precision and tiling, the inputs, the memory
    and time estimate, and the notes on the inputs found."""
    from cxrsr_utils.upscaling import resources

    sizes = [s for s in (resources.image_size(i.source) for i in found.items) if s]
    print(
        f"cxrsr upscale: {model.name} x{model.scale} ({model.describe()['precision']}, "
        f"tiling {model.describe()['tiling']}); "
        f"{resources.describe(sizes, model, inputs=len(found.items))}",
        file=sys.stderr,
    )
    for line in found.notes():
        print(f"cxrsr upscale: {line}", file=sys.stderr)


def study_command(args: argparse.Namespace) -> int:
    """``cxrsr study``: the runner's entry point with the same options."""
    from cxrsr_utils import runner

    argv = ["--profile", args.profile]
    if args.set:
        argv += ["--set", *args.set]
    if args.only:
        argv += ["--only", *args.only]
    if args.publish:
        argv.append("--publish")
    return runner.main(argv)


def sources_command(args: argparse.Namespace) -> int:
    """``cxrsr sources``: a table of every external file; 1 when a verified file is wrong."""
    from cxrsr_utils.external import inventory

    rows = inventory.inventory(verify=args.verify)
    print(inventory.table(rows))
    return EXIT_FAILED if any(r["check"].startswith("UNVERIFIED") for r in rows) else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cxrsr`` console script; returns the exit status."""
    args = _parser().parse_args(argv)  # argparse exits with 2 on a usage error
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Warnings (a missing mirror, a fallback of weights) as one line each, like the errors.
    warnings.formatwarning = lambda message, category, *_, **__: (
        f"cxrsr: {category.__name__}: {message}\n"
    )
    commands = {"study": study_command, "upscale": upscale_command, "sources": sources_command}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
