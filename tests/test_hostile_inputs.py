"""The hostile-input probe of ``cxrsr upscale`` (issue 19) as tests: inputs are never replaced,
odd files are refused by name, memory and disk errors end a file (or the batch) in one line,
re-runs and parallel runs agree, and every manifest row ends in a final state.

The cases run the bicubic baseline (the networks' exact path through formats, metadata and the
manifest) on crops of real mirror radiographs; ``bench/hostile_inputs.py`` runs the same
folder through the command and prints a GOOD/POOR/BAD table.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from cxrsr_utils import cli, runner
from cxrsr_utils.core import atomic
from cxrsr_utils.images import radiograph, radiographs
from cxrsr_utils.sr import upscaler
from cxrsr_utils.upscaling import batch, resources
from cxrsr_utils.upscaling import manifest as batch_manifest
from tests.test_dicom import make_dicom


def _hashes(folder):
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _crop(nih_image, side=24):
    return radiographs.read_radiograph(nih_image).pixels[400 : 400 + side, 400 : 400 + side]


def _run(*argv):
    return cli.main(["upscale", *map(str, argv), "--quiet"])


def _rows(out):
    return json.loads((out / "manifest.json").read_text())["rows"]


# 1. Inputs are sacred ------------------------------------------------------------------------


def test_an_input_is_never_overwritten_not_even_with_overwrite(tmp_path, nih_images, capsys):
    same = tmp_path / "same"
    same.mkdir()
    radiographs.write_png(same / "a.png", _crop(nih_images[0]))
    (tmp_path / "other").mkdir()
    os.link(same / "a.png", tmp_path / "other" / "a.png")  # the input under another name
    before = _hashes(same)[same / "a.png"]
    for out in (same, tmp_path / "other"):
        assert _run(same / "a.png", "-o", out, "--model", "lanczos", "--overwrite") == 1
        err = capsys.readouterr().err
        assert "inputs are never overwritten" in err and "Choose an output folder" in err
    link = tmp_path / "link"
    link.mkdir()
    (link / "a.png").symlink_to(same / "a.png")
    assert _run(same / "a.png", "-o", link, "--model", "lanczos", "--overwrite") == 1
    assert _hashes(same)[same / "a.png"] == before
    assert radiographs.read_radiograph(same / "a.png").pixels.shape == (24, 24)


# 3. EXIF orientation ------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [2, 6])
def test_exif_orientation_is_applied_and_recorded(tmp_path, nih_images, orientation):
    crop = _crop(nih_images[0], 32)[:, :24]  # not square: a lost rotation shows
    img = Image.fromarray(crop)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.png", exif=exif)  # lossless, so pixels compare exactly
    out = tmp_path / "out"
    assert _run(tmp_path / "o.png", "-o", out, "--model", "bicubic") == 0
    upright = np.fliplr(crop) if orientation == 2 else np.rot90(crop, k=-1)
    written = radiographs.read_radiograph(out / "o.png").pixels
    assert written.shape == (4 * upright.shape[0], 4 * upright.shape[1])
    small = np.asarray(Image.fromarray(written).resize(upright.shape[::-1], Image.BICUBIC))
    assert np.abs(small.astype(int) - upright).mean() < 3  # the upright image, not a mirror
    with Image.open(out / "o.png") as result:
        assert f"EXIF orientation {orientation} applied" in result.text["cxrsr:input_note"]


# 4. Header and pixels that contradict each other ---------------------------------------------


def test_values_above_bits_stored_are_refused_not_garbled(tmp_path, nih_images, capsys):
    pixels = _crop(nih_images[0]).astype(np.uint16) * 256 + 255  # up to 65535, BitsStored 12
    make_dicom(tmp_path / "over.dcm", pixels, bits=12)
    assert _run(tmp_path / "over.dcm", "-o", tmp_path / "out", "--model", "bicubic") == 1
    err = capsys.readouterr().err
    assert "over.dcm" in err and "above BitsStored 12" in err
    assert _rows(tmp_path / "out")[0]["status"] == "failed"


def test_signed_16_bit_holding_12_bit_values_reads_like_the_12_bit_copy(tmp_path, nih_images):
    values = _crop(nih_images[0]).astype(np.int32) * 16  # a 12-bit image
    make_dicom(tmp_path / "s.dcm", values - 2048, bits=16, signed=True, slope=1, intercept=2048)
    make_dicom(tmp_path / "u.dcm", values, bits=12)
    signed, unsigned = (radiographs.read_radiograph(tmp_path / n) for n in ("s.dcm", "u.dcm"))
    assert signed.max_value == unsigned.max_value == 4095 and "taken as 12-bit" in signed.note
    np.testing.assert_array_equal(signed.pixels, unsigned.pixels)  # not a narrow grey band
    from cxrsr_utils.images import dicom

    np.testing.assert_array_equal(dicom.stored_values(signed), values - 2048)


# 5. Only regular files -----------------------------------------------------------------------


def test_a_fifo_is_refused_with_a_line_and_never_opened(tmp_path, nih_images, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "fifo.png")
    radiographs.write_png(folder / "good.png", _crop(nih_images[0]))

    def hang(signum, frame):
        raise AssertionError("the command waited on the FIFO")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)
    try:
        assert _run(folder / "fifo.png", folder, "-o", tmp_path / "out", "--model", "bicubic") == 1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    err = capsys.readouterr().err
    assert "fifo.png: is a FIFO (named pipe), not a regular file" in err
    statuses = sorted(r["status"] for r in _rows(tmp_path / "out"))
    assert statuses == ["done", "failed"]  # fifo named twice is one input; good.png done


# 6. Memory -----------------------------------------------------------------------------------


def test_too_little_memory_refuses_the_file_before_it_starts_and_the_batch_goes_on(
    tmp_path, nih_images, monkeypatch, capsys
):
    folder = tmp_path / "in"
    folder.mkdir()
    radiographs.write_png(folder / "big.png", _crop(nih_images[0], 512))
    radiographs.write_png(folder / "small.png", _crop(nih_images[0], 8))
    bicubic = upscaler.load_model("bicubic")
    need_small, _ = resources.estimate([(8, 8)], bicubic)
    need_big, _ = resources.estimate([(512, 512)], bicubic)
    monkeypatch.setattr(resources, "available_bytes", lambda: (need_small + need_big) // 2)
    assert _run(folder, "-o", tmp_path / "out", "--model", "bicubic") == 1
    err = capsys.readouterr().err
    assert "big.png: 512x512 pixels need about" in err and "not started" in err
    rows = {r["output"]: r["status"] for r in _rows(tmp_path / "out")}
    assert rows == {"big.png": "failed", "small.png": "done"}


def test_a_memory_error_mid_file_is_one_row_not_a_traceback(tmp_path, nih_images, monkeypatch):
    radiographs.write_png(tmp_path / "a.png", _crop(nih_images[0]))
    radiographs.write_png(tmp_path / "b.png", _crop(nih_images[1]))

    def exhausted(self, rad):
        if rad.path.name == "a.png":
            raise MemoryError
        return real(self, rad)

    real = batch.Model.upscale
    monkeypatch.setattr(batch.Model, "upscale", exhausted)
    out = tmp_path / "out"
    assert _run(tmp_path / "a.png", tmp_path / "b.png", "-o", out, "--model", "bicubic") == 1
    rows = {r["output"]: r for r in _rows(out)}
    assert rows["a.png"]["status"] == "failed" and "out of memory" in rows["a.png"]["error"]
    assert rows["b.png"]["status"] == "done"


# 7. Disk full and stale temporaries ----------------------------------------------------------


def test_disk_full_names_the_output_and_a_full_manifest_stops_in_one_line(
    tmp_path, nih_images, monkeypatch, capsys
):
    for name in ("a", "b"):
        radiographs.write_png(tmp_path / f"{name}.png", _crop(nih_images[0]))
    real_save = Image.Image.save

    def full(self, fp, *args, **kwargs):
        if str(fp).startswith(str(tmp_path / "out" / ".a.png")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "out"
    assert _run(tmp_path / "a.png", tmp_path / "b.png", "-o", out, "--model", "bicubic") == 1
    err = capsys.readouterr().err
    assert f"{out / 'a.png'}: cannot write here (No space left on device)" in err
    assert "Traceback" not in err and not list(out.glob(".*.part"))

    real_write = atomic.write_text

    def no_manifest(target, text):
        if str(target).endswith(batch_manifest.MANIFEST):
            raise atomic.WriteError(f"{target}: cannot write here (No space left on device).")
        return real_write(target, text)

    monkeypatch.setattr(atomic, "write_text", no_manifest)
    assert _run(tmp_path / "b.png", "-o", tmp_path / "o2", "--model", "lanczos") == 1
    err = capsys.readouterr().err
    assert "manifest.json: cannot be written" in err and "the batch stops" in err
    assert "Traceback" not in err


def test_dead_temporaries_are_removed_and_a_live_writers_is_kept(tmp_path, nih_images):
    import fcntl

    radiographs.write_png(tmp_path / "a.png", _crop(nih_images[0]))
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    dead = out / "sub" / ".x.png.k1ll3d.part"  # what a SIGKILL leaves
    live = out / ".y.png.alive.part"
    for part in (dead, live):
        part.write_bytes(b"half")
        old = time.time() - 3 * 3600
        os.utime(part, (old, old))
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process is writing it
        assert _run(tmp_path / "a.png", "-o", out, "--model", "bicubic") == 0
        assert not dead.exists() and live.exists()


# 8. Resume and concurrency -------------------------------------------------------------------


def _folder(tmp_path, nih_images, n=6):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(n):
        radiographs.write_png(folder / f"{i}.png", _crop(nih_images[i], 16))
    return folder


def test_resume_recognises_its_outputs_however_o_is_spelled(tmp_path, nih_images, monkeypatch):
    folder = _folder(tmp_path, nih_images)
    out = tmp_path / "out"
    assert _run(folder, "-o", out, "--model", "bicubic") == 0
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alias").symlink_to(out)
    for spelling in ("out", "./out/", "alias", str(out)):
        assert _run(folder, "-o", spelling, "--model", "bicubic") == 0
    rows = _rows(out)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"skipped"}
    assert _run(folder, "-o", "out", "--model", "lanczos") == 1  # another model: refused


def _upscale_in_child(argv):
    return cli.main(argv)


def test_two_runs_on_one_folder_in_opposite_orders_agree(tmp_path, nih_images):
    import multiprocessing as mp

    folder = _folder(tmp_path, nih_images, 8)
    files = sorted(str(p) for p in folder.iterdir())
    out = str(tmp_path / "out")
    common = ["-o", out, "--model", "bicubic", "--quiet"]
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        codes = pool.map(
            _upscale_in_child, [["upscale", *files, *common], ["upscale", *files[::-1], *common]]
        )
    assert codes == [0, 0]
    rows = _rows(tmp_path / "out")
    assert len(rows) == 8 and {r["status"] for r in rows} <= {"done", "skipped"}


def test_the_same_input_twice_is_one_input_with_a_note(tmp_path, nih_images, capsys):
    folder = _folder(tmp_path, nih_images, 2)
    out = tmp_path / "out"
    argv = [folder / "0.png", folder / "0.png", folder / "." / "0.png", folder, "-o", out]
    assert _run(*argv, "--model", "bicubic") == 0
    err = capsys.readouterr().err
    assert err.count("the same file as") == 3
    assert len(_rows(out)) == 2
    assert _run(*argv, "--model", "bicubic") == 0  # the next run is not poisoned
    assert {r["status"] for r in _rows(out)} == {"skipped"}


def test_an_interrupted_file_ends_interrupted_in_the_manifest(tmp_path, nih_images, monkeypatch):
    folder = _folder(tmp_path, nih_images, 3)

    def interrupt(row, source, *args, **kwargs):
        if source.name == "1.png":
            raise KeyboardInterrupt
        return real(row, source, *args, **kwargs)

    real = batch.process
    monkeypatch.setattr(batch, "process", interrupt)
    assert _run(folder, "-o", tmp_path / "out", "--model", "bicubic") == 130
    rows = {r["output"]: r["status"] for r in _rows(tmp_path / "out")}
    assert rows == {"0.png": "done", "1.png": "interrupted"}
    assert all(status in batch_manifest.FINAL for status in rows.values())


# 9. Formats ----------------------------------------------------------------------------------


def test_cmyk_jpeg_is_converted_and_multi_frame_files_are_refused(tmp_path, nih_images, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    gray = _crop(nih_images[0])
    cmyk = np.zeros((*gray.shape, 4), np.uint8)
    cmyk[..., 3] = 255 - gray  # black ink only: the gray image
    Image.fromarray(cmyk, "CMYK").save(folder / "cmyk.jpg", quality=95)
    frames = [Image.fromarray(gray), Image.fromarray(255 - gray)]
    for name in ("anim.gif", "apng.png", "pages.tif"):
        frames[0].save(folder / name, save_all=True, append_images=frames[1:])
    frames[0].save(folder / "still.gif")
    assert _run(folder, "-o", tmp_path / "out", "--model", "bicubic") == 1
    err = capsys.readouterr().err
    for name in ("anim.gif", "apng.png", "pages.tif"):
        assert f"{name}: holds 2 frames" in err
    rows = {r["output"]: r for r in _rows(tmp_path / "out")}
    assert rows["cmyk.png"]["status"] == "done" and "CMYK converted" in rows["cmyk.png"]["note"]
    assert rows["still.png"]["status"] == "done"  # .gif is found in folder scans
    out = radiographs.read_radiograph(tmp_path / "out" / "cmyk.png").pixels
    small = np.asarray(Image.fromarray(out).resize(gray.shape[::-1], Image.BICUBIC))
    assert np.abs(small.astype(int) - gray).mean() < 8


def test_suffixless_dicom_is_found_and_files_skipped_in_a_scan_are_said(
    tmp_path, nih_images, capsys
):
    folder = tmp_path / "in"
    folder.mkdir()
    make_dicom(folder / "1.2.840.99.1", _crop(nih_images[0]).astype(np.uint16))
    (folder / "notes.txt").write_text("not an image")
    assert _run(folder, "-o", tmp_path / "out", "--model", "bicubic") == 0
    err = capsys.readouterr().err
    assert "1 file(s) in the folders given are not images and were skipped: notes.txt" in err
    assert [r["output"] for r in _rows(tmp_path / "out")] == ["1.2.840.99.1"]
    assert radiograph.is_dicom(tmp_path / "out" / "1.2.840.99.1")


def test_dicom_without_preamble_is_read_and_a_wrong_transfer_syntax_is_named(
    tmp_path, nih_images, capsys
):
    import pydicom
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    make_dicom(tmp_path / "full.dcm", _crop(nih_images[0]).astype(np.uint16))
    ds = pydicom.dcmread(tmp_path / "full.dcm")
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)  # the data set alone: no preamble, no 'DICM', no file meta
    bare = tmp_path / "bare.dcm"
    bare.write_bytes(buffer.getvalue())
    # A file meta that says big endian over a data set written little endian.
    data = make_dicom(tmp_path / "liar.dcm", _crop(nih_images[1]).astype(np.uint16)).read_bytes()
    data = data.replace(b"1.2.840.10008.1.2.1\0", b"1.2.840.10008.1.2.2\0", 1)
    (tmp_path / "liar.dcm").write_bytes(data)
    out = tmp_path / "out"
    assert _run(bare, tmp_path / "liar.dcm", "-o", out, "--model", "bicubic") == 1
    err = capsys.readouterr().err
    assert "liar.dcm: its transfer syntax says Explicit VR Big Endian" in err
    assert "encoded little endian" in err
    rows = {r["output"]: r for r in _rows(out)}
    assert rows["bare.dcm"]["status"] == "done"
    assert "read without the DICOM preamble" in rows["bare.dcm"]["note"]


def test_a_255_byte_name_is_written(tmp_path, nih_images):
    name = "r" * 251 + ".png"
    radiographs.write_png(tmp_path / name, _crop(nih_images[0]))
    assert _run(tmp_path / name, "-o", tmp_path / "out", "--model", "bicubic") == 0
    assert (tmp_path / "out" / name).is_file()


def test_audit_threshold_outside_0_1_is_a_usage_error(tmp_path, nih_images, capsys):
    radiographs.write_png(tmp_path / "a.png", _crop(nih_images[0]))
    with pytest.raises(SystemExit) as exit_:
        _run(tmp_path / "a.png", "-o", tmp_path / "out", "--audit", "-1")
    assert exit_.value.code == 2 and "between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_header_counts_every_input(tmp_path, nih_images, capsys):
    radiographs.write_png(tmp_path / "a.png", _crop(nih_images[0]))
    (tmp_path / "bad.png").write_bytes(b"garbage")
    assert (
        _run(tmp_path / "a.png", tmp_path / "bad.png", "-o", tmp_path / "o", "--model", "bicubic")
        == 1
    )
    assert "2 input(s) (1 with a readable header)" in capsys.readouterr().err.splitlines()[0]


# 10. cxrsr study -----------------------------------------------------------------------------


def test_study_ctrl_c_is_one_line_exit_130_and_no_partial_notebook(tmp_path, monkeypatch, capsys):
    import papermill

    def interrupted(source, output, **kwargs):
        with open(output, "w") as f:
            f.write('{"cells": [')  # what papermill has written when Ctrl-C comes
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    monkeypatch.setenv("CXRSR_OUTPUT_ROOT", str(tmp_path))
    assert cli.main(["study", "--profile", "quick", "--only", "01"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0]
    assert not [p for p in tmp_path.rglob("*.ipynb")]
    assert not [p for p in tmp_path.rglob(".*.part*")]


def test_study_unknown_notebook_is_a_usage_error(capsys):
    assert runner.main(["--profile", "quick", "--only", "07"]) == 2
    assert "the study's are 01_" in capsys.readouterr().err


def test_available_memory_honours_the_address_space_limit():
    import subprocess
    import sys

    limit = 6 << 30

    def cap():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    code = "from cxrsr_utils.upscaling import resources; print(resources.available_bytes())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=cap, check=True
    )
    assert 0 < int(done.stdout) < limit
    assert resources.available_bytes() > 0
