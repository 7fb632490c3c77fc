"""Radiographs in and out: the one :class:`Radiograph` type, PNG/JPEG/TIFF and DICOM readers behind
one ``read``, de-identification, and the writers of upscaled outputs.
"""
