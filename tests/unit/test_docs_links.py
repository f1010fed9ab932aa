"""The documentation lives in the repository, and its links lead somewhere.

Every relative link in the Markdown pages (README, SECURITY, CHANGELOG,
``docs/``) names a file of the repository, and a ``#anchor`` names one of
that page's headings. Every ``docs/*.md`` page a docstring or comment cites
exists. Nothing cites design notes kept outside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")])
SOURCES = sorted([*(ROOT / "geossh").rglob("*.py"), *(ROOT / "tests").rglob("*.py")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CITED_PAGE = re.compile(r"\bdocs/[\w.-]+\.md\b")
OUTSIDE = ("DESIGN.md", "PARAMIKO_API.md", "STYLE.md")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of ``page``."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # not in code blocks
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        assert resolved.exists(), (page.name, target)
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), (page.name, target)


def test_cited_pages_exist() -> None:
    missing = set()
    for source in SOURCES:
        for cited in CITED_PAGE.findall(source.read_text()):
            if not (ROOT / cited).exists():
                missing.add((str(source.relative_to(ROOT)), cited))
    assert not missing, sorted(missing)


def test_nothing_cites_documents_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    citing = sorted(
        str(path.relative_to(ROOT))
        for path in [*PAGES, *SOURCES]
        if path.resolve() != this and any(name in path.read_text() for name in OUTSIDE)
    )
    assert not citing, citing


def test_anchor_rules() -> None:
    assert "ordering-guarantee" in anchors(ROOT / "docs" / "channels.md")
    assert LINK.findall("see [a](b.md#c) and [d](https://e)") == ["b.md#c", "https://e"]
