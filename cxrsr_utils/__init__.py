"""cxrsr: super-resolving chest X-rays with a fine-tuned Real-ESRGAN, and checking the diagnosis.

The notebooks under ``notebooks/`` call into these modules; each holds one step of the study:

- ``params``     profiles and their schema          - ``sources``  weights and data sets
- ``io``         reading radiographs, atomic writes - ``data``     data preparation (notebook 01)
- ``models``     networks and pretrained weights    - ``ncnn``     ncnn -> PyTorch conversion
- ``repro``      seeds and determinism              - ``provenance``  what a run used
- ``runner``     runs the notebooks with papermill
"""

__version__ = "0.1.0"
