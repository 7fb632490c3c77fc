"""The study's core, imported by every other layer: the run's folder layout, the parameters, seeds
and devices, the CPU's abilities, atomic writes and done-stamps.
"""
