"""The batch behind ``cxrsr upscale``: inputs expanded, resources estimated, outputs and their
manifest written, and the audit of what the model invented.
"""
