"""The study's core, imported by every other layer: the parameters and their profiles, the
project root and the run's folder layout, seeds, the torch device, the CPU's abilities, the
study's fixed names, its error classes, atomic writes and done-stamps."""
