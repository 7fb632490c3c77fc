"""The README is a front page and every relative link in it and in docs/ resolves: the file
exists and, for ``page.md#anchor``, the page has a heading with that anchor (GitHub's rule)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"`|\*\*|\*", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(FENCE.sub("", page.read_text()))]


def test_anchor_follows_github():
    assert anchor("Backends: torch or OpenVINO, by CPU kind") == (
        "backends-torch-or-openvino-by-cpu-kind"
    )
    assert anchor("The `quick` profile: CI's smoke run") == "the-quick-profile-cis-smoke-run"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file {file}")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target}: no heading #{fragment} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_is_a_front_page_that_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 170
    for heading in ("## Install and run", "## The headline table", "## Upscale your own"):
        assert heading in readme
    linked = {Path(t.partition("#")[0]).name for t in links(ROOT / "README.md")}
    missing = [p.name for p in PAGES[1:] if p.name != "README.md" and p.name not in linked]
    assert not missing, f"README links no docs page {missing}"
    assert "make study" in readme and "make test" in readme


def test_the_layout_page_lists_every_module_of_every_subpackage():
    """docs/layout.md's package tables: a `### `sub/`` heading per subpackage, a row per module."""
    text = (ROOT / "docs" / "layout.md").read_text().split("## The package", 1)[1]
    sections = dict(re.findall(r"^### `?([\w ()']+?)/?`?\n(.*?)(?=^### |\Z)", text, re.M | re.S))
    package = ROOT / "cxrsr_utils"
    for sub in sorted(p.parent for p in package.glob("*/__init__.py")):
        rows = set(re.findall(r"^\| `(\w+)` \|", sections.get(sub.name, ""), re.M))
        modules = {p.stem for p in sub.glob("*.py")} - {"__init__"}
        assert rows == modules, f"docs/layout.md, {sub.name}/: {sorted(rows ^ modules)}"
    top = {p.stem for p in package.glob("*.py")} - {"__init__"}
    apps = sections.get("The apps (the package's top)", "")
    assert set(re.findall(r"^\| `(\w+)` \|", apps, re.M)) == top


def test_the_architecture_page_names_every_subpackage():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for sub in (ROOT / "cxrsr_utils").glob("*/__init__.py"):
        assert f"`{sub.parent.name}/`" in text, sub.parent.name
