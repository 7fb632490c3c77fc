"""The radiograph reader keeps bit depth and rejects bad files with a message naming them."""

import numpy as np
import pytest
from PIL import Image

from cxrsr_utils import io


def test_16bit_png_round_trip(tmp_path):
    pixels = (np.arange(48 * 40, dtype=np.uint32).reshape(40, 48) * 31 % 65536).astype(np.uint16)
    io.write_png(tmp_path / "a.png", pixels)
    r = io.read_radiograph(tmp_path / "a.png")
    assert r.pixels.dtype == np.uint16 and r.max_value == 65535
    np.testing.assert_array_equal(r.pixels, pixels)
    np.testing.assert_array_equal(io.to_pixels(r.as_float(), r.max_value), pixels)


def test_rgb_stored_gray_is_taken_exactly(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "g.png")
    r = io.read_radiograph(tmp_path / "g.png")
    np.testing.assert_array_equal(r.pixels, gray)
    assert "RGB-stored gray" in r.note


def test_colour_rgb_is_converted_and_says_so(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    r = io.read_radiograph(tmp_path / "c.png")
    assert r.pixels.max() == 76 and "luma" in r.note


def test_transparent_rgba_is_rejected_with_the_file_name(tmp_path):
    rgba = np.full((4, 4, 4), 200, np.uint8)
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "t.png")
    with pytest.raises(io.ImageReadError, match=r"t\.png.*transparent"):
        io.read_radiograph(tmp_path / "t.png")


def test_opaque_rgba_is_accepted(tmp_path):
    rgba = np.full((4, 4, 4), 255, np.uint8)
    rgba[..., :3] = 90
    Image.fromarray(rgba).save(tmp_path / "o.png")
    assert io.read_radiograph(tmp_path / "o.png").pixels.max() == 90


def test_truncated_and_garbage_files_name_the_file(tmp_path, nih_images):
    data = nih_images[0].read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    for name in ("cut.png", "junk.png"):
        with pytest.raises(io.ImageReadError, match=name.replace(".", r"\.") + ".*corrupt"):
            io.read_radiograph(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(io.ImageReadError, match="no such file"):
        io.read_radiograph(tmp_path / "absent.png")


def _dicom(path, pixels, photometric, bits):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_monochrome1_12bit_is_inverted_and_keeps_its_range(tmp_path):
    pixels = np.array([[0, 1000], [2000, 4095]], np.uint16)
    _dicom(tmp_path / "x.dcm", pixels, "MONOCHROME1", 12)
    r = io.read_radiograph(tmp_path / "x.dcm")
    assert r.max_value == 4095 and r.pixels.dtype == np.uint16
    np.testing.assert_array_equal(r.pixels, 4095 - pixels)
    assert "MONOCHROME1" in r.note


def test_dicom_monochrome2_kept(tmp_path):
    pixels = np.array([[0, 10], [20, 4095]], np.uint16)
    _dicom(tmp_path / "y", pixels, "MONOCHROME2", 12)  # no suffix: found by the DICM magic
    np.testing.assert_array_equal(io.read_radiograph(tmp_path / "y").pixels, pixels)


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "keep.txt"
    io.write_text(target, "old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_12bit_data_in_a_16bit_png_uses_its_significant_bits(tmp_path):
    pixels = np.array([[0, 1000], [2000, 4095]], np.uint16)
    io.write_png(tmp_path / "plain.png", pixels)  # no sBIT: the stated 12-bit rule
    r = io.read_radiograph(tmp_path / "plain.png")
    assert r.max_value == 4095 and "no sBIT" in r.note
    io.write_png(tmp_path / "s10.png", pixels // 4, significant_bits=10)
    r = io.read_radiograph(tmp_path / "s10.png")
    assert io.png_significant_bits(tmp_path / "s10.png") == 10
    assert r.max_value == 1023 and "sBIT" in r.note
    full = pixels.copy()
    full[0, 0] = 60000
    io.write_png(tmp_path / "full.png", full)
    assert io.read_radiograph(tmp_path / "full.png").max_value == 65535


def test_folder_empty_file_and_oversized_header_get_their_own_reason(tmp_path):
    with pytest.raises(io.ImageReadError, match="is a folder"):
        io.read_radiograph(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(io.ImageReadError, match=r"empty\.png.*empty \(0 bytes\)"):
        io.read_radiograph(tmp_path / "empty.png")
    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    with pytest.raises(io.ImageReadError, match=r"big\.png: declares 300 x 200 pixels"):
        io.read_radiograph(tmp_path / "big.png", max_pixels=50_000)
    assert io.read_radiograph(tmp_path / "big.png").pixels.shape == (200, 300)


def test_non_image_file_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(io.ImageReadError, match=r"notes\.txt: not an image format"):
        io.read_radiograph(tmp_path / "notes.txt")


def test_palette_images_are_expanded_and_transparent_palettes_refused(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray).convert("P").save(tmp_path / "p.png")
    r = io.read_radiograph(tmp_path / "p.png")
    assert "palette" in r.note and r.pixels.shape == (8, 8)
    img = Image.fromarray(gray).convert("P")
    img.info["transparency"] = int(np.asarray(img)[0, 0])
    img.save(tmp_path / "pt.png", transparency=int(np.asarray(img)[0, 0]))
    with pytest.raises(io.ImageReadError, match="transparent"):
        io.read_radiograph(tmp_path / "pt.png")


def test_killed_writer_leaves_no_png_a_glob_finds_and_stale_parts_are_removed(tmp_path):
    import os
    import time

    with pytest.raises(KeyboardInterrupt), io.atomic_path(tmp_path / "a.png") as tmp:
        tmp.write_bytes(b"half")
        assert tmp.name.startswith(".a.png.") and tmp.name.endswith(".part")
        raise KeyboardInterrupt
    stale = tmp_path / ".a.png.dead1234.part"  # what a SIGKILL would leave
    stale.write_bytes(b"half")
    assert list(tmp_path.glob("*.png")) == []
    old = time.time() - 2 * io.STALE_SECONDS
    os.utime(stale, (old, old))
    io.write_png(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_write_error_names_the_target_not_the_temporary(tmp_path, monkeypatch):
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(io.WriteError) as err:
        io.write_png(tmp_path / "out.png", np.zeros((2, 2), np.uint8))
    assert str(tmp_path / "out.png") in str(err.value) and ".part" not in str(err.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(io.WriteError, match=r"file/sub/o\.png: cannot write here"):
        io.write_text(blocker / "sub" / "o.png", "x")


def test_png_text_chunks_are_written(tmp_path):
    io.write_png(tmp_path / "t.png", np.zeros((2, 2), np.uint8), text={"cxrsr:model": "bicubic"})
    with Image.open(tmp_path / "t.png") as img:
        assert img.text["cxrsr:model"] == "bicubic"


def test_sixteen_bit_range_rule():
    twelve = np.array([[0, 4095]], np.uint16)
    assert io.sixteen_bit_range(twelve)[0] == 4095
    assert io.sixteen_bit_range(twelve, sbit=14)[0] == 16383
    assert io.sixteen_bit_range(np.array([[0, 4096]], np.uint16))[0] == 65535
