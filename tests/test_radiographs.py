"""The radiograph reader keeps bit depth and rejects bad files with a message naming them."""

import numpy as np
import pytest
from PIL import Image

from cxrsr_utils.images import radiograph, radiographs


def test_16bit_png_round_trip(tmp_path):
    pixels = (np.arange(48 * 40, dtype=np.uint32).reshape(40, 48) * 31 % 65536).astype(np.uint16)
    radiographs.write_png(tmp_path / "a.png", pixels)
    r = radiographs.read_radiograph(tmp_path / "a.png")
    assert r.pixels.dtype == np.uint16 and r.max_value == 65535
    np.testing.assert_array_equal(r.pixels, pixels)
    np.testing.assert_array_equal(radiographs.to_pixels(r.as_float(), r.max_value), pixels)


def test_rgb_stored_gray_is_taken_exactly(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "g.png")
    r = radiographs.read_radiograph(tmp_path / "g.png")
    np.testing.assert_array_equal(r.pixels, gray)
    assert "RGB-stored gray" in r.note


def test_colour_rgb_is_converted_and_says_so(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    r = radiographs.read_radiograph(tmp_path / "c.png")
    assert r.pixels.max() == 76 and "luma" in r.note


def test_transparent_rgba_is_rejected_with_the_file_name(tmp_path):
    rgba = np.full((4, 4, 4), 200, np.uint8)
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "t.png")
    with pytest.raises(radiograph.ImageReadError, match=r"t\.png.*transparent"):
        radiographs.read_radiograph(tmp_path / "t.png")


def test_opaque_rgba_is_accepted(tmp_path):
    rgba = np.full((4, 4, 4), 255, np.uint8)
    rgba[..., :3] = 90
    Image.fromarray(rgba).save(tmp_path / "o.png")
    assert radiographs.read_radiograph(tmp_path / "o.png").pixels.max() == 90


def test_truncated_and_garbage_files_name_the_file(tmp_path, nih_images):
    data = nih_images[0].read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    for name in ("cut.png", "junk.png"):
        with pytest.raises(radiograph.ImageReadError, match=name.replace(".", r"\.") + ".*corrupt"):
            radiographs.read_radiograph(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(radiograph.ImageReadError, match="no such file"):
        radiographs.read_radiograph(tmp_path / "absent.png")


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
    r = radiographs.read_radiograph(tmp_path / "x.dcm")
    assert r.max_value == 4095 and r.pixels.dtype == np.uint16
    np.testing.assert_array_equal(r.pixels, 4095 - pixels)
    assert "MONOCHROME1" in r.note


def test_dicom_monochrome2_kept(tmp_path):
    pixels = np.array([[0, 10], [20, 4095]], np.uint16)
    _dicom(tmp_path / "y", pixels, "MONOCHROME2", 12)  # no suffix: found by the DICM magic
    np.testing.assert_array_equal(radiographs.read_radiograph(tmp_path / "y").pixels, pixels)


def test_12bit_data_in_a_16bit_png_uses_its_significant_bits(tmp_path):
    pixels = np.array([[0, 1000], [2000, 4095]], np.uint16)
    radiographs.write_png(tmp_path / "plain.png", pixels)  # no sBIT: the stated 12-bit rule
    r = radiographs.read_radiograph(tmp_path / "plain.png")
    assert r.max_value == 4095 and "no sBIT" in r.note
    radiographs.write_png(tmp_path / "s10.png", pixels // 4, significant_bits=10)
    r = radiographs.read_radiograph(tmp_path / "s10.png")
    assert radiographs.png_significant_bits(tmp_path / "s10.png") == 10
    assert r.max_value == 1023 and "sBIT" in r.note
    full = pixels.copy()
    full[0, 0] = 60000
    radiographs.write_png(tmp_path / "full.png", full)
    assert radiographs.read_radiograph(tmp_path / "full.png").max_value == 65535


def test_folder_empty_file_and_oversized_header_get_their_own_reason(tmp_path):
    with pytest.raises(radiograph.ImageReadError, match="is a folder"):
        radiographs.read_radiograph(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(radiograph.ImageReadError, match=r"empty\.png.*empty \(0 bytes\)"):
        radiographs.read_radiograph(tmp_path / "empty.png")
    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    with pytest.raises(radiograph.ImageReadError, match=r"big\.png: declares 300 x 200 pixels"):
        radiographs.read_radiograph(tmp_path / "big.png", max_pixels=50_000)
    assert radiographs.read_radiograph(tmp_path / "big.png").pixels.shape == (200, 300)


def test_non_image_file_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(radiograph.ImageReadError, match=r"notes\.txt: not an image format"):
        radiographs.read_radiograph(tmp_path / "notes.txt")


def test_palette_images_are_expanded_and_transparent_palettes_refused(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray).convert("P").save(tmp_path / "p.png")
    r = radiographs.read_radiograph(tmp_path / "p.png")
    assert "palette" in r.note and r.pixels.shape == (8, 8)
    img = Image.fromarray(gray).convert("P")
    img.info["transparency"] = int(np.asarray(img)[0, 0])
    img.save(tmp_path / "pt.png", transparency=int(np.asarray(img)[0, 0]))
    with pytest.raises(radiograph.ImageReadError, match="transparent"):
        radiographs.read_radiograph(tmp_path / "pt.png")


def test_png_text_chunks_are_written(tmp_path):
    radiographs.write_png(
        tmp_path / "t.png", np.zeros((2, 2), np.uint8), text={"cxrsr:model": "bicubic"}
    )
    with Image.open(tmp_path / "t.png") as img:
        assert img.text["cxrsr:model"] == "bicubic"


def test_sixteen_bit_range_rule():
    twelve = np.array([[0, 4095]], np.uint16)
    assert radiographs.sixteen_bit_range(twelve)[0] == 4095
    assert radiographs.sixteen_bit_range(twelve, sbit=14)[0] == 16383
    assert radiographs.sixteen_bit_range(np.array([[0, 4096]], np.uint16))[0] == 65535
