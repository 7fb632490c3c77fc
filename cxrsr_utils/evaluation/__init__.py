"""Super-resolution evaluation (notebook 04): every method on the same LR inputs, scored against
HR, with the declared comparisons and summaries; :mod:`.steps` is the notebook's face.
"""
