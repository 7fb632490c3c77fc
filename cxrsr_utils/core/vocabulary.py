"""The study's fixed names: the labels and names every stage agrees on.

Kept apart from the stages that use them, and light (standard library only), so that any layer
can import them without pulling in a stage.
"""

from __future__ import annotations

# Kermany pneumonia: the class folders' names, in label order (label 0, 1: the reference CNN's
# order).
KERMANY_CLASSES = ("NORMAL", "PNEUMONIA")
