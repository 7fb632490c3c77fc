"""The study's errors: one base for every error raised on purpose, and a missing earlier step.

Every error class of the package derives from :class:`CxrsrError` and from the built-in kind it
is (``ValueError`` for bad input, ``OSError`` for a file that cannot be written or read,
``RuntimeError`` for a state the run cannot go on from), so a caller can catch the study's
errors as one family, or by kind as before. Each message names the file or key that is wrong and
what to do. The ``cxrsr`` command reports a :class:`CxrsrError` in one line; any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations


class CxrsrError(Exception):
    """An error the study raises on purpose; its message names what is wrong and the fix."""


class MissingStepError(CxrsrError, FileNotFoundError):
    """An earlier step of the study has not run, or what it wrote is gone: the message says
    which notebook (or command) to run first. A ``FileNotFoundError`` too: its cause is a
    missing file."""
