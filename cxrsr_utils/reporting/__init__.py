"""What a run leaves for readers: tables and figures written atomically, the shared plots,
provenance, and the comparison with the committed reference results.
"""
