"""cxrsr: super-resolving chest X-rays with a fine-tuned Real-ESRGAN, and checking the diagnosis.

The notebooks under ``notebooks/`` call into these modules; each holds one step of the study:

- ``params``     profiles and their schema          - ``sources``  weights and data sets
- ``radiographs`` reading/writing radiographs       - ``data``     data preparation (notebook 01)
- ``models``     networks and pretrained weights    - ``ncnn``     ncnn -> PyTorch conversion
- ``repro``      seeds and determinism              - ``provenance``  what a run used
- ``notebook``   the notebooks' set-up call         - ``report``   tables and figures
- ``runner``     runs the notebooks with papermill  - ``cli``      the ``cxrsr`` command
- ``upscaler``   models by name, :func:`upscale`    - ``batch``    ``cxrsr upscale``'s batch
- ``dicom``      DICOM in and out                   - ``audit``    what the model invented
- ``atomic``     files written whole or not at all (temporary + rename)

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
