"""Every external file the study uses (weights, data sets): where each comes from, its checksum,
how it is found (cache, mirror, package), and ``cxrsr sources``.
"""
