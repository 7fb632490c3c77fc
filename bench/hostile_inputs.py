"""A hostile folder through the real ``cxrsr upscale`` command: a GOOD/POOR/BAD table.

What a hospital IT engineer would try before trusting the command with an archive (issue 19's
probe), each case run as its own command in a fresh process (``python -m cxrsr_utils.cli``,
``--model bicubic``: the networks' exact path through readers, writers, DICOM and the
manifest, in seconds), on crops of a real mirror radiograph:

- BAD: an input changed, an identifier or the input's name in an anonymized output, a wrong
  image written silently, a hang, a traceback;
- POOR: the right outcome with a wrong or missing message, or rows not in a final state;
- GOOD: what docs/upscaling.md's "Bad input" paragraph promises.

The disk-full case mounts a 1 MB tmpfs (root only; otherwise it is reported as not run). The
tests (``tests/test_hostile_inputs.py``, ``tests/test_deidentify.py``) hold the same promises;
this is the end-to-end view. Output: ``reports/bench/hostile_inputs.md``.
Run: ``python bench/hostile_inputs.py`` (about 2 minutes).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import REPORTS, ROOT, nih_images
from PIL import Image

from cxrsr_utils.core.cpu import isa_label
from cxrsr_utils.images import radiographs
from tests.test_dicom import make_dicom  # the one synthetic DX DICOM of tests and benches

TIMEOUT = 120


@dataclass
class Result:
    code: int | None  # None: it hung (killed at TIMEOUT)
    err: str
    out: Path


def upscale(*args: object, timeout: float = TIMEOUT, limit_as: int | None = None) -> Result:
    """The command in a fresh process; ``limit_as`` caps its address space (bytes)."""

    def cap() -> None:
        if limit_as:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    argv = [sys.executable, "-m", "cxrsr_utils.cli", "upscale", *map(str, args), "--quiet"]
    argv += [] if "--model" in map(str, args) else ["--model", "bicubic"]
    out = Path(str(args[args.index("-o") + 1])) if "-o" in args else Path()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, preexec_fn=cap
        )
        return Result(done.returncode, done.stderr, out)
    except subprocess.TimeoutExpired as exc:
        return Result(None, str(exc.stderr or ""), out)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(out: Path) -> list[dict]:
    try:
        return json.loads((out / "manifest.json").read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return []


def verdict(ok: bool, poor: bool = False) -> str:
    return "GOOD" if ok else ("POOR" if poor else "BAD")


def basic(res: Result) -> str:
    """BAD for a hang or a traceback, else ''."""
    if res.code is None:
        return "BAD"
    return "BAD" if "Traceback" in res.err else ""


# Each case: (folder to work in) -> (verdict, what happened).
Case = Callable[[Path], tuple[str, str]]


def crop(side: int = 32) -> np.ndarray:
    return radiographs.read_radiograph(nih_images()[0]).pixels[400 : 400 + side, 400 : 400 + side]


def write_dicom(path: Path, pixels: np.ndarray, **tags: object) -> Path:
    """A 12-bit DX DICOM of ``pixels`` with the attributes ``tags`` set."""
    import pydicom

    make_dicom(path, pixels)
    ds = pydicom.dcmread(path)
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def overwrite_input(d: Path) -> tuple[str, str]:
    radiographs.write_png(d / "a.png", crop())
    before = sha(d / "a.png")
    res = upscale(d / "a.png", "-o", d, "--model", "lanczos", "--overwrite")
    ok = sha(d / "a.png") == before
    said = "never overwritten" in res.err
    return basic(res) or verdict(ok and said, ok), f"exit {res.code}, input unchanged: {ok}"


def anonymize_leak(d: Path) -> tuple[str, str]:
    src = d / "in" / "Doe_John_MRN123456.dcm"
    src.parent.mkdir()
    write_dicom(
        src,
        crop().astype(np.uint16) * 16,
        PatientName="Doe^John",
        PatientID="MRN123456",
        PatientBirthTime="101010",
        PatientComments="Doe John",
        StudyDescription="Doe John chest",
        StationName="DOE1",
        StudyDate="20240101",
    )
    res = upscale(src.parent, "-o", d / "out", "--anonymize")
    blob = b"".join(p.read_bytes() for p in (d / "out").rglob("*") if p.is_file())
    blob += "".join(str(p) for p in (d / "out").rglob("*")).encode()
    leaks = [w for w in (b"Doe", b"MRN123456", b"20240101", b"DOE1") if w in blob]
    return basic(res) or verdict(res.code == 0 and not leaks), f"exit {res.code}, leaks {leaks}"


def exif(orientation: int) -> Case:
    def case(d: Path) -> tuple[str, str]:
        image = crop(32)[:, :24]
        img = Image.fromarray(image)
        meta = img.getexif()
        meta[0x0112] = orientation
        img.save(d / "o.png", exif=meta)
        res = upscale(d / "o.png", "-o", d / "out")
        upright = np.fliplr(image) if orientation == 2 else np.rot90(image, k=-1)
        got = radiographs.read_radiograph(d / "out" / "o.png").pixels if res.code == 0 else None
        ok = got is not None and got.shape == (upright.shape[0] * 4, upright.shape[1] * 4)
        if ok:
            small = np.asarray(Image.fromarray(got).resize(upright.shape[::-1], Image.BICUBIC))
            ok = float(np.abs(small.astype(int) - upright).mean()) < 3
        return basic(res) or verdict(ok), f"exit {res.code}, upright output: {ok}"

    return case


def bits_overflow(d: Path) -> tuple[str, str]:
    write_dicom(
        d / "over.dcm", crop().astype(np.uint16) * 256 + 255
    )  # BitsStored 12, values 16-bit
    res = upscale(d / "over.dcm", "-o", d / "out")
    said = "above BitsStored" in res.err
    return basic(res) or verdict(res.code == 1 and said), f"exit {res.code}, refused: {said}"


def fifo(d: Path) -> tuple[str, str]:
    os.mkfifo(d / "fifo.png")
    res = upscale(d / "fifo.png", "-o", d / "out", timeout=60)
    said = "not a regular file" in res.err
    return basic(res) or verdict(said), f"exit {res.code}, refused by name: {said}"


def memory(d: Path) -> tuple[str, str]:
    Image.fromarray(np.zeros((8000, 8000), np.uint8)).save(d / "huge.png")
    radiographs.write_png(d / "small.png", crop(16))
    res = upscale(d / "huge.png", d / "small.png", "-o", d / "out", limit_as=6 << 30)
    states = {r["output"]: r["status"] for r in rows(d / "out")}
    ok = states == {"huge.png": "failed", "small.png": "done"} and "not started" in res.err
    return basic(res) or verdict(ok, bool(states)), f"exit {res.code}, rows {states}"


def disk_full(d: Path) -> tuple[str, str]:
    mnt = d / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode:
        return "n/a", "not run: mounting a 1 MB tmpfs needs root"
    try:
        for i in range(4):  # 2048 x 2048 outputs, well over 1 MB together
            radiographs.write_png(d / f"{i}.png", crop(512))
        res = upscale(*(d / f"{i}.png" for i in range(4)), "-o", mnt)
        lines = [line for line in res.err.splitlines() if "No space left" in line]
        ok = res.code == 1 and lines and all(str(mnt) in line for line in lines)
        return basic(res) or verdict(bool(ok)), f"exit {res.code}, {len(lines)} disk-full line(s)"
    finally:
        subprocess.run(["umount", str(mnt)])


def sigkill_parts(d: Path) -> tuple[str, str]:
    (d / "in").mkdir()
    for i in range(3):
        radiographs.write_png(d / "in" / f"{i}.png", crop(128))
    (d / "out").mkdir()
    dead = d / "out" / ".1.png.k1ll3d.part"
    dead.write_bytes(b"half")
    a_minute_ago = time.time() - 60  # the re-run comes a minute after the kill
    os.utime(dead, (a_minute_ago, a_minute_ago))
    res = upscale(d / "in", "-o", d / "out")
    ok = not dead.exists() and res.code == 0
    return basic(res) or verdict(ok), f"exit {res.code}, dead .part removed: {not dead.exists()}"


def resume_spelling(d: Path) -> tuple[str, str]:
    (d / "in").mkdir()
    for i in range(5):
        radiographs.write_png(d / "in" / f"{i}.png", crop(16 + i))
    first = upscale(d / "in", "-o", d / "out")
    again = upscale(d / "in", "-o", os.path.relpath(d / "out", ROOT))
    states = [r["status"] for r in rows(d / "out")]
    ok = first.code == again.code == 0 and states == ["skipped"] * 5
    return basic(again) or verdict(ok), f"exits {first.code}/{again.code}, rows {states}"


def concurrent(d: Path) -> tuple[str, str]:
    (d / "in").mkdir()
    files = []
    for i in range(10):
        files.append(radiographs.write_png(d / "in" / f"{i}.png", crop(64)))
    base = [sys.executable, "-m", "cxrsr_utils.cli", "upscale", "-o", str(d / "out")]
    base += ["--model", "bicubic", "--quiet"]
    procs = [
        subprocess.Popen([*base, *map(str, order)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for order in (files, files[::-1])
    ]
    codes = [p.wait(TIMEOUT) for p in procs]
    states = sorted({r["status"] for r in rows(d / "out")})
    ok = codes == [0, 0] and len(rows(d / "out")) == 10 and set(states) <= {"done", "skipped"}
    return verdict(ok), f"exits {codes}, {len(rows(d / 'out'))} rows {states}"


def refused(name: str, make: Callable[[Path], Path], says: str) -> Case:
    def case(d: Path) -> tuple[str, str]:
        path = make(d)
        res = upscale(path, "-o", d / "out")
        return basic(res) or verdict(says in res.err), f"exit {res.code}: '{says}' said"

    case.__name__ = name
    return case


def converted(make: Callable[[Path], Path], note: str) -> Case:
    def case(d: Path) -> tuple[str, str]:
        path = make(d)
        res = upscale(path, "-o", d / "out")
        got = [r for r in rows(d / "out") if r["status"] == "done"]
        ok = res.code == 0 and len(got) == 1 and note in got[0]["note"] + got[0]["output"]
        return basic(res) or verdict(ok), f"exit {res.code}, {got[0]['note'] if got else ''}"

    return case


def frames(name: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        images = [Image.fromarray(crop()), Image.fromarray(255 - crop())]
        images[0].save(d / name, save_all=True, append_images=images[1:])
        return d / name

    return make


def cmyk(d: Path) -> Path:
    ink = np.zeros((32, 32, 4), np.uint8)
    ink[..., 3] = 255 - crop()
    Image.fromarray(ink, "CMYK").save(d / "cmyk.jpg")
    return d / "cmyk.jpg"


def suffixless(d: Path) -> Path:
    (d / "in").mkdir()
    write_dicom(d / "in" / "1.2.840.99.7", crop().astype(np.uint16))
    return d / "in"


def gif(d: Path) -> Path:
    (d / "in").mkdir()
    Image.fromarray(crop()).save(d / "in" / "still.gif")
    return d / "in"


def no_preamble(d: Path) -> Path:
    path = write_dicom(d / "full.dcm", crop().astype(np.uint16))
    data = path.read_bytes()
    (d / "bare.dcm").write_bytes(data[132 + 12 + int.from_bytes(data[140:144], "little") :])
    return d / "bare.dcm"


def big_endian_liar(d: Path) -> Path:
    path = write_dicom(d / "liar.dcm", crop().astype(np.uint16))
    path.write_bytes(
        path.read_bytes().replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2.2\0", 1)
    )
    return path


def long_name(d: Path) -> Path:
    return radiographs.write_png(d / ("r" * 251 + ".png"), crop())


def duplicates(d: Path) -> tuple[str, str]:
    radiographs.write_png(d / "a.png", crop())
    first = upscale(d / "a.png", d / "a.png", d / "." / "a.png", "-o", d / "out")
    second = upscale(d / "a.png", "-o", d / "out")
    ok = first.code == second.code == 0 and "the same file as" in first.err
    return basic(first) or verdict(ok), f"exits {first.code}/{second.code}"


def audit_negative(d: Path) -> tuple[str, str]:
    radiographs.write_png(d / "a.png", crop())
    res = upscale(d / "a.png", "-o", d / "out", "--audit", "-1")
    ok = res.code == 2 and not (d / "out").exists()
    return basic(res) or verdict(ok), f"exit {res.code}, nothing written: {ok}"


def study_ctrl_c(d: Path) -> tuple[str, str]:
    env = {**os.environ, "CXRSR_OUTPUT_ROOT": str(d)}
    argv = [sys.executable, "-m", "cxrsr_utils.cli", "study", "--only", "01"]

    def as_in_a_terminal() -> None:  # a background job ignores SIGINT; a terminal's does not
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=as_in_a_terminal
    )
    time.sleep(20)  # inside notebook 01
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        return "BAD", "did not stop on Ctrl-C"
    left = [p.name for p in d.rglob("*.ipynb")]
    ours = [line for line in err.splitlines() if "interrupted" in line]
    kernel_noise = "Traceback" in err  # the Jupyter kernel's own, as its sockets close
    ok = proc.returncode == 130 and not left and len(ours) == 1
    detail = f"exit {proc.returncode}, {ours}, executed copies left {left}"
    detail += "; the kernel process prints its own ZMQError traceback" if kernel_noise else ""
    return verdict(ok and not kernel_noise, ok), detail


def unknown_notebook(d: Path) -> tuple[str, str]:
    argv = [sys.executable, "-m", "cxrsr_utils.cli", "study", "--only", "07"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    return verdict(done.returncode == 2), f"exit {done.returncode}"


CASES: dict[str, Case] = {
    "input overwritten by -o its folder --overwrite": overwrite_input,
    "--anonymize leaves identifiers or the file name": anonymize_leak,
    "EXIF orientation 2 (mirrored)": exif(2),
    "EXIF orientation 6 (rotated)": exif(6),
    "DICOM values above BitsStored": bits_overflow,
    "a FIFO named fifo.png": fifo,
    "8000x8000 PNG with 6 GB of address space": memory,
    "disk full (1 MB tmpfs)": disk_full,
    "dead .part of a killed run": sigkill_parts,
    "resume with -o spelled differently": resume_spelling,
    "two runs on one folder, opposite orders": concurrent,
    "CMYK JPEG": converted(cmyk, "CMYK converted"),
    "animated GIF": refused("gif", frames("anim.gif"), "holds 2 frames"),
    "APNG": refused("apng", frames("anim.png"), "holds 2 frames"),
    "multi-page TIFF": refused("tiff", frames("pages.tif"), "holds 2 frames"),
    "still .gif in a folder scan": converted(gif, "still.png"),
    "suffix-less DICOM in a folder scan": converted(suffixless, "1.2.840.99.7"),
    "DICOM without preamble": converted(no_preamble, "without the DICOM preamble"),
    "transfer syntax says big endian": refused("liar", big_endian_liar, "encoded little endian"),
    "255-byte file name": converted(long_name, "rrrr"),
    "the same input listed three times": duplicates,
    "--audit -1": audit_negative,
    "Ctrl-C in cxrsr study": study_ctrl_c,
    "cxrsr study --only 07": unknown_notebook,
}


def main() -> None:
    results = []
    for name, case in CASES.items():
        folder = Path(tempfile.mkdtemp(prefix="cxrsr-hostile-"))
        t0 = time.perf_counter()
        try:
            grade, detail = case(folder)
        except Exception as exc:  # the probe itself broke: say so, go on
            grade, detail = "BAD", f"probe error {type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        results.append((name, grade, detail, time.perf_counter() - t0))
        print(f"{grade:<5} {name}: {detail}", flush=True)
    counts = {g: sum(r[1] == g for r in results) for g in ("GOOD", "POOR", "BAD", "n/a")}
    table = "| case | verdict | what happened | s |\n|---|---|---|---|\n" + "".join(
        f"| {n} | {g} | {d.replace('|', '/')} | {s:.1f} |\n" for n, g, d, s in results
    )
    page = (
        "# Hostile inputs through `cxrsr upscale`\n\n"
        f"CPU: {isa_label()} (2 cores). Written by `bench/hostile_inputs.py` (its docstring "
        "says what GOOD, POOR and BAD mean). "
        + ", ".join(f"{n} {g}" for g, n in counts.items())
        + ".\n\n"
        + table
    )
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "hostile_inputs.md").write_text(page)
    print(page)
    sys.exit(1 if counts["BAD"] else 0)


if __name__ == "__main__":
    main()
