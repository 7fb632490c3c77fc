"""``cxrsr``: upscale real mirror radiographs in every format, answer every bad input, resume.

Most cases run the bicubic baseline (same path as the networks: formats, metadata, DICOM,
manifest) so they take seconds; the network cases use 32x32 to 64x64 crops.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from cxrsr_utils import cli
from cxrsr_utils.images import radiograph, radiographs
from cxrsr_utils.upscaling import batch
from tests.test_dicom import make_dicom


def _hashes(folder):
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _upscale(source, out, *options):
    """``cxrsr upscale SOURCE -o OUT --quiet OPTIONS...``: its exit status."""
    return cli.main(["upscale", str(source), "-o", str(out), "--quiet", *options])


def _crop(path, side=48, y=400, x=400):
    return radiographs.read_radiograph(path).pixels[y : y + side, x : x + side]


@pytest.fixture
def inputs(tmp_path, nih_images, kermany_root):
    """A folder of real radiograph crops in every input format."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    gray8 = _crop(nih_images[0])
    radiographs.write_png(src / "nih8.png", gray8)
    Image.fromarray(np.stack([gray8] * 3, -1)).save(src / "rgbgray.png")
    jpeg = sorted((kermany_root / "train" / "NORMAL").glob("*.jpeg"))[0]
    Image.fromarray(_crop(jpeg)).save(src / "sub" / "kermany.jpeg", quality=95)
    full16 = gray8.astype(np.uint16) * 257  # 0..65535: a full 16-bit range
    radiographs.write_png(src / "full16.png", full16)
    Image.fromarray(full16).save(src / "scan.tif")
    twelve = gray8.astype(np.uint16) * 16
    make_dicom(
        src / "mono1.dcm", 4095 - twelve, photometric="MONOCHROME1", bits=12, spacing=(0.14, 0.15)
    )
    return src


def test_every_format_round_trips_with_provenance_and_inputs_unchanged(inputs, tmp_path, capsys):
    before = _hashes(inputs)
    out = tmp_path / "out"
    assert cli.main(["upscale", str(inputs), "-o", str(out), "--model", "bicubic", "--quiet"]) == 0
    assert _hashes(inputs) == before
    names = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )
    assert names == [
        "full16.png",
        "manifest.json",
        "mono1.dcm",
        "nih8.png",
        "rgbgray.png",
        "scan.tif",
        "sub/kermany.png",
    ]
    with Image.open(out / "nih8.png") as img:
        assert img.size == (192, 192) and img.text["cxrsr:model"] == "bicubic"
        assert img.text["cxrsr:scale"] == "4" and "cxrsr:model_sha256" in img.text
    sixteen = radiographs.read_radiograph(out / "full16.png")
    top = int(radiographs.read_radiograph(inputs / "full16.png").pixels.max())
    assert sixteen.pixels.dtype == np.uint16 and sixteen.max_value == 65535 and top > 4095 * 8
    # The range survives (not squeezed into 1/16 of it or into 8 bits).
    assert abs(int(sixteen.pixels.max()) - top) < 0.05 * top
    with Image.open(out / "scan.tif") as img:
        assert np.asarray(img).dtype == np.uint16
        assert json.loads(img.tag_v2[270])["cxrsr:model"] == "bicubic"
    manifest = json.loads((out / "manifest.json").read_text())
    assert {r["status"] for r in manifest["rows"]} == {"done"} and len(manifest["rows"]) == 6
    assert all(r["seconds"] >= 0 and r["output"] for r in manifest["rows"])
    jpeg_row = next(r for r in manifest["rows"] if r["input"].endswith("kermany.jpeg"))
    assert "JPEG written as PNG (lossless)" in jpeg_row["note"]
    assert "6 done, 0 skipped, 0 failed" in capsys.readouterr().out


def test_dicom_round_trip_keeps_form_and_derives_a_series(inputs, tmp_path):
    import pydicom

    out = tmp_path / "out"
    assert (
        cli.main(
            ["upscale", str(inputs / "mono1.dcm"), "-o", str(out), "--model", "bicubic", "--quiet"]
        )
        == 0
    )
    src, dst = pydicom.dcmread(inputs / "mono1.dcm"), pydicom.dcmread(out / "mono1.dcm")
    assert dst.PhotometricInterpretation == "MONOCHROME1" and dst.BitsStored == 12
    assert (dst.Rows, dst.Columns) == (4 * src.Rows, 4 * src.Columns)
    assert [float(v) for v in dst.PixelSpacing] == pytest.approx([0.035, 0.0375])
    assert [float(v) for v in dst.ImagerPixelSpacing] == pytest.approx([0.035, 0.0375])
    assert dst.SOPInstanceUID != src.SOPInstanceUID
    assert dst.SeriesInstanceUID != src.SeriesInstanceUID
    assert dst.StudyInstanceUID == src.StudyInstanceUID
    assert list(dst.ImageType) == ["DERIVED", "SECONDARY"]
    assert "bicubic" in dst.DerivationDescription and "sha256" in dst.DerivationDescription
    assert not dst.file_meta.TransferSyntaxUID.is_compressed
    assert dst.PatientName == "Doe^Jane" and dst.PatientID == "P123"
    # MONOCHROME1 written back: dark stays dark (bicubic of the stored values, to rounding).
    small = np.asarray(
        Image.fromarray(dst.pixel_array.astype(np.float32)).resize(
            (src.Columns, src.Rows), Image.Resampling.BICUBIC
        )
    )
    assert np.abs(small - src.pixel_array).mean() < 20

    anon = tmp_path / "anon"
    args = ["upscale", str(inputs / "mono1.dcm"), "-o", str(anon), "--model", "bicubic"]
    assert cli.main([*args, "--anonymize", "--quiet"]) == 0
    [written] = anon.glob("*.dcm")
    assert written.name == f"cxr-{batch.file_sha256(inputs / 'mono1.dcm')[:16]}.dcm"
    a = pydicom.dcmread(written)
    for name, original in [
        ("PatientID", "P123"),
        ("PatientName", "Doe^Jane"),
        ("AccessionNumber", "ACC9"),
        ("InstitutionName", "General Hospital"),
        ("PatientBirthDate", "19700101"),
    ]:
        assert a.get(name, "") != original, name
    assert a.PatientIdentityRemoved == "YES"
    assert a.StudyInstanceUID != src.StudyInstanceUID


def test_signed_dicom_round_trip_keeps_negative_values(tmp_path):
    import pydicom

    stored = np.tile(np.linspace(-2048, 1984, 32).astype(np.int16), (32, 1))
    make_dicom(tmp_path / "s.dcm", stored, signed=True, slope=1, intercept=-1024)
    assert _upscale(tmp_path / "s.dcm", tmp_path / "o", "--model", "bicubic") == 0
    out = pydicom.dcmread(tmp_path / "o" / "s.dcm")
    assert out.PixelRepresentation == 1 and out.pixel_array.min() < -1900
    assert out.RescaleIntercept == -1024


def _bad_inputs(folder, nih_image):
    folder.mkdir()
    data = nih_image.read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 3])
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0garbage" * 50)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    rgba = np.full((16, 16, 4), 120, np.uint8)
    rgba[..., 3] = 10
    Image.fromarray(rgba).save(folder / "transparent.png")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(folder / "pixel.png")
    make_dicom(folder / "nopixels.dcm", np.zeros((8, 8), np.uint16), pixel_data=False)
    make_dicom(folder / "colour.dcm", np.zeros((8, 8, 3), np.uint16), photometric="RGB", bits=8)
    from pydicom.uid import JPEG2000Lossless

    make_dicom(folder / "j2k.dcm", np.zeros((8, 8), np.uint16), syntax=JPEG2000Lossless)
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(gray).convert("P").save(folder / "palette.png")
    radiographs.write_png(folder / "good.png", _crop(nih_image, 24))


def test_bad_inputs_each_get_one_line_and_the_batch_goes_on(tmp_path, nih_images, capsys):
    bad = tmp_path / "bad"
    _bad_inputs(bad, nih_images[0])
    files = sorted(str(p) for p in bad.iterdir())
    before = _hashes(bad)
    status = cli.main(
        ["upscale", *files, "-o", str(tmp_path / "out"), "--model", "bicubic", "--quiet"]
    )
    assert status == 1
    assert _hashes(bad) == before
    err = capsys.readouterr().err
    assert "memory bound" in err.splitlines()[0]  # stated before the first file
    reasons = {
        "truncated.png": "corrupt or truncated",
        "corrupt.png": "",
        "empty.png": "empty (0 bytes)",
        "notes.txt": "not an image format",
        "transparent.png": "transparent",
        "pixel.png": "1 x 1 pixels",
        "nopixels.dcm": "without pixel data",
        "colour.dcm": "is colour",
        "j2k.dcm": "JPEG 2000",
    }
    lines = [line for line in err.splitlines() if line.startswith("cxrsr upscale: /")]
    assert len(lines) == len(reasons)
    for name, reason in reasons.items():
        assert any(name in line and reason in line for line in lines), name
    rows = {
        r["input"].rsplit("/", 1)[1]: r
        for r in json.loads((tmp_path / "out" / "manifest.json").read_text())["rows"]
    }
    assert rows["good.png"]["status"] == rows["palette.png"]["status"] == "done"
    assert {n for n, r in rows.items() if r["status"] == "failed"} == set(reasons)
    assert not list((tmp_path / "out").glob("*.part")) and not list(
        (tmp_path / "out").glob(".*.part")
    )


def test_usage_errors_exit_2(tmp_path, nih_images, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    radiographs.write_png(folder / "a.png", _crop(nih_images[0], 16))
    assert cli.main(["upscale", str(folder), "-o", str(folder / "out"), "--model", "bicubic"]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["upscale", str(folder), "-o", str(blocker / "out"), "--model", "bicubic"]) == 2
    assert "cannot be written" in capsys.readouterr().err
    assert (
        cli.main(["upscale", str(folder), "-o", str(tmp_path / "o"), "--model", "nosuchmodel"]) == 2
    )
    err = capsys.readouterr().err
    assert "Unknown model 'nosuchmodel'" in err and "pretrained" in err and "lanczos" in err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["upscale", str(folder)])  # no -o
    assert exit_.value.code == 2


def test_existing_output_rerun_skip_overwrite_and_interrupt(tmp_path, nih_images, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        radiographs.write_png(folder / f"{i}.png", _crop(nih_images[i], 16))
    out = tmp_path / "out"
    real = batch.process
    calls = []

    def interrupt_on_second(row, source, target, model, **kw):
        calls.append(source.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(row, source, target, model, **kw)

    monkeypatch.setattr(batch, "process", interrupt_on_second)
    args = ["upscale", str(folder), "-o", str(out), "--model", "bicubic", "--quiet"]
    assert cli.main(args) == 130
    assert sorted(p.name for p in out.iterdir() if p.name[0] != ".") == ["0.png", "manifest.json"]
    monkeypatch.setattr(batch, "process", real)
    stamp = (out / "0.png").stat().st_mtime_ns
    assert cli.main(args) == 0
    rows = {
        r["input"].rsplit("/", 1)[1]: r["status"]
        for r in json.loads((out / "manifest.json").read_text())["rows"]
    }
    assert rows == {"0.png": "skipped", "1.png": "done", "2.png": "done"}
    assert (out / "0.png").stat().st_mtime_ns == stamp
    # Another model over these outputs: refused per file without --overwrite, then replaced.
    lanczos = ["upscale", str(folder), "-o", str(out), "--model", "lanczos", "--quiet"]
    assert cli.main(lanczos) == 1
    assert cli.main([*lanczos, "--overwrite"]) == 0
    with Image.open(out / "1.png") as img:
        assert img.text["cxrsr:model"] == "lanczos"


def test_pretrained_network_with_audit(tmp_path, nih_images):
    radiographs.write_png(tmp_path / "c.png", _crop(nih_images[0], 32))
    out = tmp_path / "out"
    assert _upscale(tmp_path / "c.png", out, "--audit", "--precision", "fp32") == 0
    row = json.loads((out / "manifest.json").read_text())["rows"][0]
    assert (
        row["model"]["model"].startswith("RealESRGAN_x4plus")
        and len(row["model"]["model_sha256"]) == 64
    )
    assert 25 < row["audit"]["lr_consistency_psnr_db"] < 80
    assert 0 <= row["audit"]["departs_fraction"] <= 1
    mask = radiographs.read_radiograph(out / "c.png.audit.png")
    assert mask.pixels.shape == (128, 128) and set(np.unique(mask.pixels)) <= {0, 255}


def test_python_entry_point_on_paths_and_arrays(nih_images, tmp_path):
    import cxrsr_utils

    crop = _crop(nih_images[0], 16)
    radiographs.write_png(tmp_path / "c.png", crop)
    [rad] = cxrsr_utils.upscale(tmp_path / "c.png", model="bicubic")
    assert rad.pixels.shape == (64, 64) and rad.meta["model"] == "bicubic"
    floats, ints = cxrsr_utils.upscale([crop / 255.0, crop], model="lanczos")
    assert floats.dtype == np.float32 and floats.shape == (64, 64)
    assert ints.dtype == np.uint8 and ints.shape == (64, 64)


def test_sources_lists_every_file_with_its_state(capsys):
    assert cli.main(["sources"]) == 0
    out = capsys.readouterr().out
    for name in ("RealESRGAN_x4plus", "vgg19", "RealESRGAN_x4plus_ncnn", "nih", "kermany"):
        assert name in out
    assert "missing" in out or "mirror" in out or "cache" in out


def test_study_passes_its_options_to_the_runner(monkeypatch):
    from cxrsr_utils import runner

    seen = []
    monkeypatch.setattr(
        runner, "run_study", lambda *a, **k: seen.append(a) or {"wall_seconds": {"total": 0}}
    )
    assert cli.main(["study", "--profile", "quick", "--set", "seed=3", "--only", "01"]) == 0
    assert seen[0][:3] == ("quick", {"seed": 3}, ["01"])
    # --set repeated adds to the overrides (it once kept only the last one)
    argv = ["study", "--set", "seed=3", "nih.n_crops=4", "--set", "finetune.total_iter=4"]
    assert cli.main(argv) == 0
    assert seen[1][1] == {"seed": 3, "nih.n_crops": 4, "finetune.total_iter": 4}


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--set", "seed=1", "seed=2"], "seed is given twice"),
        (["--set", "nih.no_such_key=1"], "unknown key 'nih.no_such_key'"),
        (["--set", "nih.n_crops=many"], "nih.n_crops"),
        (["--profile", "no_such_profile"], "No profile 'no_such_profile'"),
    ],
)
def test_study_parameter_errors_exit_2_with_the_reason(monkeypatch, capsys, argv, says):
    from cxrsr_utils import runner

    monkeypatch.setattr(
        runner,
        "run_study",
        lambda profile, overrides, *a, **k: runner.load_params(profile, overrides),
    )  # the real params check, no notebook run
    assert cli.main(["study", *argv]) == 2
    err = capsys.readouterr().err
    assert "parameter error" in err and says in err


def test_help_shows_a_real_example(capsys):
    for command in ("study", "upscale", "sources"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert f"cxrsr {command}" in capsys.readouterr().out


@pytest.mark.slow
def test_default_tile_pad_keeps_tiled_within_the_stated_db_of_untiled(nih_images):
    """RRDBNet tiled as the command tiles by default (128 / 32) against untiled, on a real
    radiograph crop of 200x200 (2 x 2 windows of 192x192; about a minute on 2 CPU cores).

    The default matters: at tile 32 with the same pad this crop is only 52 dB from untiled.
    """
    from cxrsr_utils.sr import infer, upscaler
    from cxrsr_utils.sr import networks as models
    from cxrsr_utils.stats import image_metrics as metrics

    net, _ = models.load_pretrained_generator(download=False)
    rad = radiographs.read_radiograph(nih_images[1])
    crop = radiograph.Radiograph(rad.pixels[300:500, 300:500].copy(), 255, rad.path)
    whole = infer.upscale_radiograph(crop, net, infer.InferOptions(progress=False))
    tiled = infer.upscale_radiograph(
        crop,
        net,
        infer.InferOptions(
            tile=upscaler.DEFAULT_TILE,
            tile_pad=upscaler.DEFAULT_TILE_PAD,
            batch_size=1,
            progress=False,
        ),
    )
    db = metrics.psnr(whole.as_float(), tiled.as_float())
    print(f"tiled vs untiled: {db:.1f} dB")
    assert db > upscaler.TILED_MIN_DB, db


def test_a_fine_tuned_variant_of_a_run_and_a_pth_path(tmp_path, nih_images, capsys):
    import torch

    from cxrsr_utils.sr import networks as models

    torch.manual_seed(0)
    run = tmp_path / "work" / "quick"
    weights = run / "finetune" / "paper" / "generator.pth"
    weights.parent.mkdir(parents=True)
    models.save_torch({"params_ema": models.build_generator().state_dict()}, weights)
    radiographs.write_png(tmp_path / "c.png", _crop(nih_images[0], 16))
    for spec in (["--model", "paper", "--run", str(run)], ["--model", str(weights)]):
        out = tmp_path / f"out{len(spec)}"
        assert _upscale(tmp_path / "c.png", out, "--precision", "fp32", *spec) == 0
        with Image.open(out / "c.png") as img:
            assert (
                img.text["cxrsr:model_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
            )
    assert (
        cli.main(
            [
                "upscale",
                str(tmp_path / "c.png"),
                "-o",
                str(tmp_path / "o"),
                "--model",
                "matched",
                "--run",
                str(run),
            ]
        )
        == 2
    )
    assert "known: pretrained, paper, bicubic, lanczos" in capsys.readouterr().err


def test_compressed_dicom_is_decoded_and_written_uncompressed(tmp_path, nih_images):
    import pydicom
    from pydicom.uid import RLELossless

    stored = _crop(nih_images[0], 24).astype(np.uint16) * 16
    make_dicom(tmp_path / "rle.dcm", stored)
    ds = pydicom.dcmread(tmp_path / "rle.dcm")
    ds.compress(RLELossless)  # pydicom's own RLE encoder and decoder
    ds.save_as(tmp_path / "rle.dcm")
    assert _upscale(tmp_path / "rle.dcm", tmp_path / "o", "--model", "bicubic") == 0
    out = pydicom.dcmread(tmp_path / "o" / "rle.dcm")
    assert not out.file_meta.TransferSyntaxUID.is_compressed
    assert out.pixel_array.shape == (96, 96) and out.BitsStored == 12


def test_globs_expand_and_a_glob_matching_nothing_fails_alone(tmp_path, nih_images):
    for i in range(2):
        radiographs.write_png(tmp_path / f"g{i}.png", _crop(nih_images[i], 8))
    out = tmp_path / "o"
    status = cli.main(
        [
            "upscale",
            str(tmp_path / "g*.png"),
            str(tmp_path / "none*.png"),
            "-o",
            str(out),
            "--model",
            "bicubic",
            "--quiet",
        ]
    )
    rows = json.loads((out / "manifest.json").read_text())["rows"]
    assert status == 1 and [r["status"] for r in rows] == ["done", "done", "failed"]
    assert "no such file" in rows[2]["error"]


def test_sources_verify_flags_a_wrong_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CXRSR_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "cache" / "weights" / "RealESRGAN_x4plus.pth"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the official weights")
    assert cli.main(["sources", "--verify"]) == 1
    line = next(
        x for x in capsys.readouterr().out.splitlines() if x.startswith("RealESRGAN_x4plus ")
    )
    assert "cache" in line and str(bad) in line and "UNVERIFIED" in line
