"""The study's errors are one family (core.errors.CxrsrError), each also of its built-in kind."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from cxrsr_utils.core.errors import CxrsrError, MissingStepError

PACKAGE = Path(__file__).resolve().parents[1] / "cxrsr_utils"


def error_classes() -> list[tuple[str, str]]:
    """(module, class) of every exception class the package defines."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("cxrsr_utils", *path.relative_to(PACKAGE).with_suffix("").parts))
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception")):
                found.append((module.removesuffix(".__init__"), node.name))
    return found


ERRORS = error_classes()


def test_the_scan_finds_the_errors() -> None:
    assert ("cxrsr_utils.core.params", "ParamsError") in ERRORS
    assert len(ERRORS) >= 15


@pytest.mark.parametrize(("module", "name"), ERRORS, ids=[n for _, n in ERRORS])
def test_every_error_is_a_cxrsr_error_of_a_builtin_kind(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, CxrsrError)
    if cls is not CxrsrError:
        builtin = [b for b in cls.__mro__ if b.__module__ == "builtins" and b is not object]
        assert builtin[0] is not Exception, f"{name} says of which kind it is only 'Exception'"


def test_a_missing_step_is_a_missing_file() -> None:
    from cxrsr_utils.finetune import logs

    with pytest.raises(MissingStepError, match="train first") as err:
        logs.loss_log(PACKAGE / "no-such-run" / "loss.csv")
    assert isinstance(err.value, FileNotFoundError)
