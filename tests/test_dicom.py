"""DICOM in and out: modality LUT, signed data, MONOCHROME1, refusals with reasons."""

from __future__ import annotations

import numpy as np
import pytest

from cxrsr_utils.images import dicom, radiograph, radiographs


def make_dicom(
    path,
    pixels,
    *,
    photometric="MONOCHROME2",
    bits=12,
    signed=False,
    slope=None,
    intercept=None,
    spacing=(0.2, 0.2),
    syntax=None,
    pixel_data=True,
):
    """A DX radiograph with patient/study tags, as a clinic would export it."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import (
        DigitalXRayImageStorageForPresentation,
        ExplicitVRLittleEndian,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "P123", "19700101"
    ds.AccessionNumber, ds.InstitutionName = "ACC9", "General Hospital"
    ds.Modality, ds.ImageType = "DX", ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    ds.PhotometricInterpretation = photometric
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelSpacing = ds.ImagerPixelSpacing = [str(v) for v in spacing]
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = str(slope), str(intercept or 0)
    if pixel_data:
        if syntax is not None:
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 not a codestream"])
        else:
            ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_signed_dicom_keeps_negative_values_and_the_rescale(tmp_path):
    stored = np.array([[-2048, -1000], [0, 2047]], np.int16)
    make_dicom(tmp_path / "s.dcm", stored, signed=True, slope=2, intercept=-100)
    r = radiographs.read_radiograph(tmp_path / "s.dcm")
    # Stored -2048..2047 map onto 0..4095: nothing is clipped, order and spacing kept.
    np.testing.assert_array_equal(r.pixels, stored.astype(np.int32) + 2048)
    assert r.max_value == 4095 and "signed" in r.note and "modality LUT" in r.note
    np.testing.assert_array_equal(dicom.stored_values(r), stored)


def test_rgb_dicom_is_called_colour_not_multi_frame(tmp_path):
    make_dicom(tmp_path / "c.dcm", np.zeros((4, 4, 3), np.uint16), photometric="RGB", bits=8)
    with pytest.raises(
        radiograph.ImageReadError, match=r"c\.dcm: DICOM photometric .* RGB is colour"
    ):
        radiographs.read_radiograph(tmp_path / "c.dcm")


def test_dicom_without_pixel_data(tmp_path):
    make_dicom(tmp_path / "h.dcm", np.zeros((4, 4), np.uint16), pixel_data=False)
    with pytest.raises(radiograph.ImageReadError, match=r"h\.dcm: DICOM without pixel data"):
        radiographs.read_radiograph(tmp_path / "h.dcm")


def test_undecodable_transfer_syntax_names_syntax_and_package(tmp_path):
    from pydicom.uid import JPEG2000Lossless

    make_dicom(tmp_path / "j.dcm", np.zeros((4, 4), np.uint16), syntax=JPEG2000Lossless)
    with pytest.raises(radiograph.ImageReadError) as err:
        radiographs.read_radiograph(tmp_path / "j.dcm")
    msg = str(err.value)
    assert "j.dcm" in msg and "JPEG 2000" in msg and "pylibjpeg-openjpeg" in msg


def test_monochrome1_round_trip_through_stored_values(tmp_path):
    stored = np.array([[0, 1000], [2000, 4095]], np.uint16)
    make_dicom(tmp_path / "m.dcm", stored, photometric="MONOCHROME1")
    r = radiographs.read_radiograph(tmp_path / "m.dcm")
    np.testing.assert_array_equal(r.pixels, 4095 - stored)
    np.testing.assert_array_equal(dicom.stored_values(r), stored)
