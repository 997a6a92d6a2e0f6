"""The docs hold together: every relative link and every file path they name is there, every
``#anchor`` is a heading of its page, and every table is whole.

Links are checked as GitHub renders them (anchors are its heading slugs); a path written as code
(`docs/paraview.md`, `tests/fuzz/test_api_fuzz.py`) may be relative to the page, the repository
or ``src/`` (a package path such as `convscope/paraview/open_exports.py`), where its first
folder is one of those.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^ *```.*?^ *```", re.S | re.M)
CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
PATH = re.compile(r"(?:\.\./)*[\w.-]+(?:/[\w.-]+)+\.(?:md|py|png|svg|json|toml)")


def _prose(page: Path) -> str:
    """The page without its code blocks (their lines kept, blank, so line numbers stay)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), page.read_text())


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(page).splitlines():
        if m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_slugs_are_githubs() -> None:
    assert slug("Cost (benchmarks/bench_export.py)") == "cost-benchmarksbench_exportpy"
    assert slug("1. The loop, watched") == "1-the-loop-watched"
    assert slug("The page (`#/explore`)") == "the-page-explore"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    text = CODE.sub(lambda m: m.group(0).replace("[", "").replace("]", ""), _prose(page))
    broken = []
    for number, line in enumerate(text.splitlines(), 1):  # (a link's text may span lines: its target does not)
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            where = (page.parent / file).resolve() if file else page
            if not where.exists():
                broken.append(f"line {number}: {target} (no file {file})")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                broken.append(f"line {number}: {target} (no heading #{anchor} in {where.name})")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_file_path_named_in_prose_exists(page: Path) -> None:
    bases = (page.parent, ROOT, ROOT / "src")
    missing = []
    for code in CODE.findall(_prose(page)):
        path = code.strip()
        first = path.split("/")[0]
        # (a path in a folder the text names, such as a table's "file (in `convscope/paraview/`)", is left alone)
        if PATH.fullmatch(path) and any((base / first).exists() for base in bases):
            if not any((base / path).exists() for base in bases):
                missing.append(path)
    assert not missing, f"{page.relative_to(ROOT)} names files that are not there: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_table_is_whole(page: Path) -> None:
    """A table row must follow a row or start a table (a header over its ``|---|`` line): a row
    after a paragraph renders as text, and cuts the table it belonged to in two."""
    lines = _prose(page).splitlines()
    stray = [
        number
        for number, line in enumerate(lines, 1)
        if line.startswith("|")
        and not (number > 1 and lines[number - 2].startswith("|"))
        and not (number < len(lines) and re.match(r"\|\s*:?-", lines[number]))
    ]
    assert not stray, f"{page.relative_to(ROOT)}: table rows outside a table on lines {stray}"
