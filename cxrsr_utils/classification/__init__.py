"""The pneumonia check (notebook 05): the reference Keras CNN, its images and folds, the predicting
forms and their statistics, and the size-only baseline; :mod:`.steps` is the notebook's face.
"""
