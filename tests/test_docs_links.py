"""Docstrings and tests cite files inside the repository only, and every cited file exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"\b(?:docs|experiments|benchmarks|tests)/[A-Za-z0-9_./-]+\.(?:md|py|sh)\b")


def _sources():
    return [*sorted((ROOT / "src" / "latentmed").rglob("*.py")), *sorted((ROOT / "tests").glob("*.py"))]


def test_cited_repository_files_exist():
    missing = sorted({f"{p.relative_to(ROOT)}: {m}" for p in _sources() for m in CITED.findall(p.read_text())
                      if not (ROOT / m).exists()})
    assert not missing, "cited files that are not in the repository:\n" + "\n".join(missing)


def test_no_citation_outside_the_repository():
    outside = re.compile(r"(?<![\w/])DESIGN\.md|/work/(?:shared|notes)")  # the design note is docs/design.md
    found = [str(p.relative_to(ROOT)) for p in _sources()
             if p.name != Path(__file__).name and outside.search(p.read_text())]
    assert not found, f"cite docs/design.md instead of a file outside the repository: {found}"
    assert (ROOT / "docs" / "design.md").is_file()
