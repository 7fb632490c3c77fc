"""Fine-tuning Real-ESRGAN (notebook 03): the basicsr option dict, the device-agnostic training
model, the loop, validation, checkpoints, logs and the run's records; :mod:`.steps` is the
notebook's face and torchrun's module.
"""
