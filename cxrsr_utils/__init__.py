"""cxrsr: super-resolving chest X-rays with a fine-tuned Real-ESRGAN, and checking the diagnosis.

The notebooks under ``notebooks/`` call into these subpackages, one per stage of the study and
one per kind of shared work (lowest layer first; docs/architecture.md):

- ``core``        parameters, paths, seeds, device, CPU, names, errors, atomic writes
- ``images``      the ``Radiograph`` type, reading PNG/JPEG/TIFF/DICOM, writing outputs
- ``external``    every external file (weights, data sets) and how it is found
- ``stats``       image-quality metrics and the statistics
- ``sr``          the SR engine: networks, inference, backends, :func:`upscale`
- ``reporting``   tables, figures, provenance, the committed reference results
- ``degradation`` notebook 02 (and the LR inputs of 01): how LR images are made
- ``data_prep``   notebook 01: the data sets, their splits and pairs
- ``finetune``    notebook 03: fine-tuning Real-ESRGAN
- ``evaluation``  notebook 04: SR evaluation
- ``classification``  notebook 05: the pneumonia classifier on every form
- ``upscaling``   the batch behind ``cxrsr upscale``

and, at the top, the apps: ``cli`` (the ``cxrsr`` command), ``runner`` (the study), ``notebook``
(the notebooks' set-up call) and ``colab``.

One line to upscale a radiograph (a path, a Radiograph or an array)::

    import cxrsr_utils
    [sr] = cxrsr_utils.upscale("cxr.dcm", model="pretrained")
"""

from typing import Any

__version__ = "0.1.0"


def upscale(inputs: Any, model: Any = "pretrained", **kwargs: Any) -> list[object]:
    """Upscale radiographs; see :func:`cxrsr_utils.sr.upscaler.upscale` (imported lazily so that
    ``import cxrsr_utils`` stays free of torch)."""
    from cxrsr_utils.sr.upscaler import upscale as _upscale

    return _upscale(inputs, model, **kwargs)
