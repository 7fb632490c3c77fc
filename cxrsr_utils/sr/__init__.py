"""The super-resolution engine: the networks and their weights, the inference backends (torch,
OpenVINO), tiled inference, and :func:`upscaler.upscale`.
"""
