"""The study's parameters: one pydantic schema, YAML profiles under ``params/``, overrides.

A profile is ``params/<name>.yaml`` (or any YAML path). Overrides are a nested dict merged on
top (``{"nih": {"n_crops": 4}}``) or dotted keys (``{"nih.n_crops": 4}``). Unknown or
mistyped keys are errors that list the valid keys at that level.

This module holds the whole schema (:class:`Params`) and the loading; its sections are in
:mod:`cxrsr_utils.core.params_data` and :mod:`cxrsr_utils.core.params_networks`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from cxrsr_utils.core.errors import CxrsrError
from cxrsr_utils.core.params_base import StrictSection
from cxrsr_utils.core.params_data import (
    DegradationParams,
    KermanyParams,
    NIHParams,
    PreviewParams,
)
from cxrsr_utils.core.params_networks import (
    EVALUATE_SPEED_SWITCHES,
    SPEED_SWITCHES,
    ClassifierParams,
    EvaluateParams,
    FinetuneParams,
)
from cxrsr_utils.core.project import PARAMS_DIR

PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ParamsError(CxrsrError, ValueError):
    """A profile or override is invalid; the message says which key and what is allowed."""


class Params(StrictSection):
    """All parameters of one run of the study."""

    profile: str = Field(..., pattern=PROFILE_NAME, description="names work/<profile>/")
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    scale: Literal[4] = 4
    nih: NIHParams
    kermany: KermanyParams
    degradation: DegradationParams = DegradationParams()
    preview: PreviewParams = PreviewParams()
    finetune: FinetuneParams
    evaluate: EvaluateParams = EvaluateParams()
    classifier: ClassifierParams

    @model_validator(mode="after")
    def _hr_divisible(self) -> Params:
        for name, size in (
            ("nih.eval_hr_size", self.nih.eval_hr_size),
            ("nih.val_hr_size", self.nih.val_side),
            ("kermany.hr_size", self.kermany.hr_size),
        ):
            if size % self.scale:
                raise ValueError(f"{name}={size} must be divisible by scale {self.scale}")
        return self

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of these parameters, without the speed switches
        (:data:`SPEED_SWITCHES`, :data:`EVALUATE_SPEED_SWITCHES`): they do not change what a
        run computes, only its floating-point rounding."""
        values = self.model_dump(
            mode="json",
            exclude={
                "finetune": set(SPEED_SWITCHES),
                "evaluate": set(EVALUATE_SPEED_SWITCHES),
            },
        )
        blob = json.dumps(values, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _undot(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys to nested dicts; a key reached twice (``a.b`` and ``a: {b}``) is an error."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(f"{prefix}{key}: {part} is given both as a value and a mapping.")
        if isinstance(value, dict):
            value = _undot(value, f"{prefix}{key}.")
        if isinstance(node.get(parts[-1]), dict) and isinstance(value, dict):
            _refuse_overlap(node[parts[-1]], value, f"{prefix}{key}.")
            node[parts[-1]] = _deep_merge(node[parts[-1]], value)
        elif parts[-1] in node:
            raise ParamsError(f"{prefix}{key} is given twice; give each key once.")
        else:
            node[parts[-1]] = value
    return nested


def _refuse_overlap(a: dict[str, Any], b: dict[str, Any], prefix: str) -> None:
    for key in a.keys() & b.keys():
        if isinstance(a[key], dict) and isinstance(b[key], dict):
            _refuse_overlap(a[key], b[key], f"{prefix}{key}.")
        else:
            raise ParamsError(f"{prefix}{key} is given twice; give each key once.")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ParamsError(
                f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); give it once."
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["nih.n_crops=4", ...]`` (the command line's ``--set``) to an overrides dict.

    Values are YAML (``4`` is an int, ``[a, b]`` a list); a key given twice is an error.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamsError(f"--set takes key=value (dotted keys allowed), got {item!r}")
        if key in out:
            raise ParamsError(f"--set {key} is given twice; give each key once.")
        try:
            out[key] = yaml.load(value, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            raise ParamsError(f"--set {item!r}: the value is not valid YAML ({exc}).") from exc
    return out


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return model


def _explain(err: ValidationError, origin: str) -> ParamsError:
    lines = [f"Invalid parameters in {origin}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<top>"
        if e["type"] == "extra_forbidden":
            valid = ", ".join(sorted(_model_at(tuple(e["loc"][:-1])).model_fields))
            lines.append(f"  unknown key {where!r}; valid keys here: {valid}")
        else:
            lines.append(f"  {where}: {e['msg']} (got {e.get('input')!r})")
    return ParamsError("\n".join(lines))


def profile_path(profile: str | os.PathLike[str]) -> Path:
    """The YAML file of a profile name (``quick``) or path."""
    path = Path(profile)
    if path.suffix in {".yaml", ".yml"}:
        return path
    if not re.match(PROFILE_NAME, str(profile)) or ".." in str(profile):
        raise ParamsError(
            f"Profile name {str(profile)!r} may hold only letters, digits, '_', '-' and '.' (it "
            "names the folder work/<profile>/); give a YAML path for a profile elsewhere."
        )
    candidate = PARAMS_DIR / f"{profile}.yaml"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in PARAMS_DIR.glob("*.yaml")))
        raise ParamsError(f"No profile {profile!r} in {PARAMS_DIR}; known profiles: {known}.")
    return candidate


def load_params(
    profile: str | os.PathLike[str] = "quick", overrides: dict[str, Any] | None = None
) -> Params:
    """Load a profile and apply overrides; raises :class:`ParamsError` on any bad key/value."""
    path = profile_path(profile)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except (OSError, yaml.YAMLError, ParamsError) as exc:
        raise ParamsError(f"Cannot read profile {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"Profile {path} must be a mapping of keys to values.")
    raw.setdefault("profile", path.stem)
    merged = _deep_merge(_undot(raw), _undot(overrides or {}))
    try:
        return Params.model_validate(merged)
    except ValidationError as err:
        origin = f"{path}" + (f" with overrides {overrides}" if overrides else "")
        raise _explain(err, origin) from None
