"""The front door and the docs site (issue 24): README.md stays short, every section it used to hold is a
page reachable from it, and the site builds offline in strict mode (a broken internal link or a page left
out of the nav fails)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")

# The README's sections before it became a front door (headings, some renamed in the docs), each of which
# must stay one link path away from it.
MOVED = ["Quickstart", "How long it takes", "Project layout", "How the pipeline is built",
         "Stage contracts: one declaration, everything else follows", "Stage processes",
         "Configuration and overrides", "Data format", "detect (optional, before prepare)", "prepare",
         "instruct", "base_model", "tune", "generate", "survey", "evaluate",
         "attribute: which community would have written this post", "summarize and report", "Bad input",
         "Tracking (MLflow)", "MLflow UI and the regression gate", "Ask every community at once: the panel",
         "Run the benchmarks", "Running on your own corpus", "Evaluate generations you already have",
         "The paper's eating-disorder communities", "On a GPU with a large base model", "Working as a team",
         "Ethics and safety", "Run the tests"]


def test_readme_is_a_short_front_door():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 15_000, f"README.md is {len(readme.encode())} bytes; move detail into docs/"
    for command in ("make setup", "make repro", "hivelm init", "evaluate:\n  corpora: []", "hivelm ui",
                    "hivelm panel", "docs/img/panel.png", "```mermaid"):
        assert command in readme, command


def _reachable() -> set[Path]:
    """Every page linked from README.md, and from those pages, transitively."""
    seen: set[Path] = set()
    todo = [REPO / "README.md"]
    while todo:
        page = todo.pop()
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.relative_to(REPO)} links to {target}, which does not exist"
            if path not in seen:
                seen.add(path)
                todo.append(path)
    return seen


def test_every_section_the_readme_dropped_is_reachable_from_it():
    headings = {re.sub(r"^#+ ", "", line).strip()
                for page in _reachable() for line in page.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")}
    assert [h for h in MOVED if h not in headings] == []


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is a dev extra (`make setup` installs it)")
def test_docs_site_builds_offline_and_strict(tmp_path):
    site = tmp_path / "site"
    build = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir",
                            str(site)], cwd=REPO, capture_output=True, text=True, timeout=120,
                           env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(tmp_path)})
    assert build.returncode == 0, build.stderr[-3000:]
    pages = {p.relative_to(site).as_posix() for p in site.rglob("index.html")}
    assert {"index.html", "configuration/index.html", "reference/cli/index.html",
            "reference/metrics/index.html", "explanation/method/index.html"} <= pages
    # Offline: Material's Google fonts are off, so no page asks fonts.googleapis.com for anything.
    assert "fonts.googleapis.com" not in (site / "index.html").read_text(encoding="utf-8")
