"""Data preparation (notebook 01): the NIH and Kermany data sets, their patient splits and folds,
and the HR/LR pairs; :mod:`.steps` is the notebook's face.
"""
