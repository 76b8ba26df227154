"""The documentation lives in the repository: no file cites a document outside it, and every
relative link of the docs pages (and of README/CONTRIBUTING/CHANGELOG) reaches a file, and an
anchor on a docs page reaches one of its headings."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC_PAGES = sorted((REPO / "docs").glob("*.md"))
LINKING = [*DOC_PAGES, REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "CHANGELOG.md"]

#: Citations of documents that live outside the repository (the project's early design notes).
OUTSIDE = re.compile(r"DESIGN(\.md| ?§|'s \d)|entropy-literature|shared/reference|real-frameworks-cpu\.md")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_no_citation_of_documents_outside_the_repository() -> None:
    found = []
    skip = {".git", ".venv", "venv", "build", "dist", "runs", "data", "__pycache__", "node_modules"}
    paths = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        paths += [Path(folder) / f for f in files if f.endswith((".py", ".md", ".toml", ".sh"))]
    for path in sorted(paths):
        rel = path.relative_to(REPO)
        if rel == Path("tests/test_docs.py"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert found == [], "cite a page under docs/ (or a paper) instead:\n" + "\n".join(found)


def test_docs_links_resolve() -> None:
    assert {p.name for p in DOC_PAGES} >= {"README.md", "architecture.md", "run-directory.md", "definitions.md",
                                           "interventions.md", "decisions.md"}
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    assert all(f"({p.name})" in index for p in DOC_PAGES if p.name != "README.md"), "docs/README.md lists every page"
    broken = []
    for page in LINKING:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and dest.parent == REPO / "docs":
                headings = {_slug(h) for h in re.findall(r"^#+\s+(.*)$", dest.read_text(encoding="utf-8"), re.M)}
                if anchor not in headings:
                    broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert broken == [], "\n".join(broken)
