"""``cxrsr upscale --anonymize``: PS3.15's basic profile read back tag by tag, UIDs mapped once
per run (one new study/series per source study/series), its two retain options, and no input
name in any output name, manifest row or metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cxrsr_utils import cli
from cxrsr_utils.images import deidentify, radiographs
from cxrsr_utils.upscaling import batch
from tests.test_dicom import make_dicom

# A value of each VR that a profile action must remove, empty or replace.
_VALUES = {
    "PN": "Doe^John",
    "LO": "Doe John MRN123456",
    "SH": "MRN123456",
    "LT": "Doe John, MRN123456",
    "ST": "Doe John, MRN123456",
    "UT": "Doe John, MRN123456",
    "UC": "Doe John MRN123456",
    "CS": "SECRET",
    "AE": "STATION1",
    "AS": "045Y",
    "DA": "19700101",
    "TM": "101010",
    "DT": "19700101101010",
    "DS": "71.5",
    "IS": "7",
    "US": 7,
    "SS": 7,
    "UL": 7,
    "SL": 7,
    "FL": 7.5,
    "FD": 7.5,
    "OB": b"\x01\x02",
    "UN": b"\x01\x02",
    "UR": "http://example.org/doe",
}


def _crop(nih_image, side=16):
    return radiographs.read_radiograph(nih_image).pixels[400 : 400 + side, 400 : 400 + side]


def _profile_dicom(path, pixels):
    """A DICOM with every (non-repeating) attribute of the profile filled with an identifying
    value; returns {tag: value} of what was filled."""
    import pydicom
    from pydicom.datadict import dictionary_VR
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    make_dicom(path, pixels)
    ds = pydicom.dcmread(path)
    filled = {}
    for tag in deidentify.profile_table()["ALL_TAGS"]:
        if len(tag) != 2 or tag[0] in (0x0000, 0x0002, 0xFFFA, 0xFFFC) or tag[0] & 1:
            continue
        try:
            vr = dictionary_VR((tag[0] << 16) | tag[1]).split(" or ")[0]
        except KeyError:
            continue
        if vr == "UI":
            value = ds[tag].value if tag in ds and ds[tag].VR == "UI" else generate_uid()
        elif vr == "SQ":
            item = Dataset()
            item.PatientName = "Doe^John"
            value = Sequence([item])
        elif vr in _VALUES:
            value = _VALUES[vr]
        else:
            continue
        ds.add_new(tag, vr, value)
        filled[tag] = value
    ds.add_new((0x0009, 0x0010), "LO", "ACME private")  # a private block
    ds.add_new((0x0009, 0x1001), "LO", "Doe John")
    ds.save_as(path, enforce_file_format=True)
    return filled


def _gone(ds, tag, original) -> bool:
    """The original value of ``tag`` no longer in ``ds`` (removed, emptied or replaced)."""
    if tag not in ds:
        return True
    value = ds[tag].value
    if ds[tag].VR == "SQ":
        return all(item.get("PatientName", "") != "Doe^John" for item in value)
    return value != original and str(value) != str(original)


def test_every_attribute_of_the_basic_profile_is_removed_emptied_or_replaced(tmp_path, nih_images):
    import pydicom

    src = tmp_path / "in" / "Doe_John_MRN123456.dcm"
    src.parent.mkdir()
    filled = _profile_dicom(src, _crop(nih_images[0]).astype(np.uint16) * 16)
    assert len(filled) > 400  # the profile's table, not a short list
    out = tmp_path / "out"
    argv = ["upscale", str(src), "-o", str(out), "--model", "bicubic", "--quiet", "--anonymize"]
    assert cli.main(argv) == 0
    [written] = [p for p in out.iterdir() if p.suffix == ".dcm"]
    ds = pydicom.dcmread(written)
    kept = [f"({t[0]:04X},{t[1]:04X})" for t, v in filled.items() if not _gone(ds, t, v)]
    assert kept == []
    assert (0x0009, 0x1001) not in ds and ds.PatientIdentityRemoved == "YES"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    # The file name held the patient's name: nowhere in names, manifest or metadata.
    text = (out / "manifest.json").read_text() + str(ds) + written.name
    assert "Doe" not in text and "MRN123456" not in text
    assert ds.pixel_array.shape == (64, 64)  # still an image


def _series(tmp_path, nih_image):
    """Four DICOMs: study 1 series A (two images), study 1 series B, study 2."""
    import pydicom
    from pydicom.uid import generate_uid

    folder = tmp_path / "series"
    folder.mkdir()
    study1, study2, series_a, series_b = (generate_uid() for _ in range(4))
    plan = [("a1", study1, series_a), ("a2", study1, series_a), ("b", study1, series_b)]
    plan.append(("c", study2, generate_uid()))
    for index, (name, study, series) in enumerate(plan):
        path = make_dicom(folder / f"{name}.dcm", _crop(nih_image).astype(np.uint16) * 16 + index)
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyDate = study, series, "20240102"
        ds.save_as(path, enforce_file_format=True)
    return folder, {"study1": study1, "study2": study2, "a": series_a, "b": series_b}


def _uids(out):
    import pydicom

    rows = json.loads((out / "manifest.json").read_text())["rows"]
    by_source = {}
    for row in rows:
        ds = pydicom.dcmread(out / row["output"])
        by_source[row["input_sha256"]] = ds
    return by_source


def test_uids_map_once_per_run_one_new_study_and_series_per_source(tmp_path, nih_images):
    folder, uid = _series(tmp_path, nih_images[0])
    sha = {p.stem: batch.file_sha256(p) for p in folder.iterdir()}
    runs = []
    for run in ("one", "two"):
        out = tmp_path / run
        argv = ["upscale", str(folder), "-o", str(out), "--model", "bicubic", "--quiet"]
        assert cli.main([*argv, "--anonymize"]) == 0
        ds = _uids(out)
        a1, a2, b, c = (ds[sha[n]] for n in ("a1", "a2", "b", "c"))
        assert a1.SeriesInstanceUID == a2.SeriesInstanceUID != b.SeriesInstanceUID
        assert a1.StudyInstanceUID == a2.StudyInstanceUID == b.StudyInstanceUID
        assert c.StudyInstanceUID != a1.StudyInstanceUID
        assert not {x.StudyInstanceUID for x in (a1, c)} & {uid["study1"], uid["study2"]}
        assert a1.SeriesInstanceUID not in (uid["a"], uid["b"])
        assert len({x.SOPInstanceUID for x in (a1, a2, b, c)}) == 4
        assert a1.get("StudyDate", "") != "20240102"
        assert sorted(p.name for p in out.glob("*.dcm")) == sorted(
            f"cxr-{s[:16]}.dcm" for s in sha.values()
        )
        runs.append(a1.StudyInstanceUID)
    assert runs[0] != runs[1]  # two runs never share a mapping


def test_without_anonymize_one_source_series_gives_one_derived_series(tmp_path, nih_images):
    folder, uid = _series(tmp_path, nih_images[0])
    out = tmp_path / "out"
    assert cli.main(["upscale", str(folder), "-o", str(out), "--model", "bicubic", "--quiet"]) == 0
    ds = {p.stem: p for p in folder.iterdir()}
    import pydicom

    a1, a2, b = (pydicom.dcmread(out / ds[n].name) for n in ("a1", "a2", "b"))
    assert a1.SeriesInstanceUID == a2.SeriesInstanceUID != b.SeriesInstanceUID
    assert a1.SeriesInstanceUID != uid["a"] and a1.StudyInstanceUID == uid["study1"]
    assert a1.PatientName == "Doe^Jane"  # kept without --anonymize


def test_retain_options_keep_uids_or_dates_and_say_so(tmp_path, nih_images):
    import pydicom

    folder, uid = _series(tmp_path, nih_images[0])
    base = ["upscale", str(folder / "a1.dcm"), "--model", "bicubic", "--quiet", "--anonymize"]
    assert cli.main([*base, "-o", str(tmp_path / "u"), "--retain-uids"]) == 0
    assert cli.main([*base, "-o", str(tmp_path / "d"), "--retain-dates"]) == 0
    [u] = (tmp_path / "u").glob("*.dcm")
    [d] = (tmp_path / "d").glob("*.dcm")
    u, d = pydicom.dcmread(u), pydicom.dcmread(d)
    assert u.StudyInstanceUID == uid["study1"] and u.get("StudyDate", "") != "20240102"
    assert d.StudyDate == "20240102" and d.StudyInstanceUID != uid["study1"]
    assert d.PatientName != "Doe^Jane" and u.PatientName != "Doe^Jane"
    assert [c.CodeValue for c in u.DeidentificationMethodCodeSequence] == ["113100", "113110"]
    assert [c.CodeValue for c in d.DeidentificationMethodCodeSequence] == ["113100", "113106"]
    assert d.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert cli.main(["upscale", str(folder), "-o", str(tmp_path / "x"), "--retain-uids"]) == 2


def test_burned_in_annotation_is_refused_when_anonymizing(tmp_path, nih_images, capsys):
    import pydicom

    path = make_dicom(tmp_path / "burned.dcm", _crop(nih_images[0]).astype(np.uint16))
    ds = pydicom.dcmread(path)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(path, enforce_file_format=True)
    argv = ["upscale", str(path), "-o", str(tmp_path / "o"), "--model", "bicubic", "--quiet"]
    assert cli.main([*argv, "--anonymize"]) == 1
    err = capsys.readouterr().err
    assert "burned-in annotation" in err and "burned.dcm" not in err  # the pseudonym is named
    assert not list((tmp_path / "o").glob("*.dcm"))


@pytest.mark.parametrize("suffix", [".png", ".jpeg", ".tif"])
def test_anonymized_images_carry_no_input_name(tmp_path, nih_images, suffix):
    folder = tmp_path / "Doe_John"
    folder.mkdir()
    source = folder / f"Doe_John_MRN123456{suffix}"
    Image.fromarray(_crop(nih_images[0], 24)).save(source)
    out = tmp_path / "out"
    argv = ["upscale", str(tmp_path / "Doe_John"), "-o", str(out), "--model", "bicubic"]
    assert cli.main([*argv, "--quiet", "--anonymize"]) == 0
    written = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    blob = b"".join(p.read_bytes() for p in written) + "".join(map(str, written)).encode()
    assert b"Doe" not in blob and b"MRN123456" not in blob
    assert any(p.name.startswith("cxr-") for p in written)
