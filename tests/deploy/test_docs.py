"""The README stays a one-page entry that links every page under docs/; the links between pages resolve (files and
headings); commands are written as the installed `shipsafe`; the generated part of docs/offline-preview.md follows
`harness.apiserver.NOT_MODELLED`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy.docs import offline_preview as offline_preview_docs
from harness.apiserver import NOT_MODELLED
from harness.stack_config import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MAX_README_LINES = 260

# [text](target) with a relative target: no scheme, not a bare anchor into the same page.
LINK = re.compile(r"\[[^\]]*\]\((?![a-z][a-z0-9+.-]*:)([^)\s#]*)(?:#([^)\s]*))?\)")


def _prose(page: Path) -> str:
    """The page without code blocks and code spans, where brackets are code, not links."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL))


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def test_the_readme_is_one_page() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail to docs/"


def test_the_readme_links_every_docs_page() -> None:
    linked = {(README.parent / target).resolve() for target, _ in LINK.findall(_prose(README)) if target}
    missing = [page.name for page in PAGES if page.resolve() not in linked]
    assert not missing, f"README.md does not link docs/{missing}"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    broken = []
    for target, anchor in LINK.findall(_prose(page)):
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}#{anchor}: no such heading")
    assert not broken, f"{page.name}: {broken}"


def test_anchors_follow_githubs_rule() -> None:
    assert _anchor("How verification decides") == "how-verification-decides"
    assert _anchor("e2e: the check that proves it") == "e2e-the-check-that-proves-it"
    assert _anchor("The app's tests") == "the-apps-tests"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_commands_are_written_as_the_installed_shipsafe(page: Path) -> None:
    # `python -m deploy` stays an alias, said so once; a command line in the docs uses the installed name.
    old = re.findall(r"python -m deploy [a-z][\w-]*", page.read_text())
    assert not old, f"{page.name} writes {old}: use `shipsafe ...`"


def test_the_offline_preview_page_lists_what_the_model_leaves_out() -> None:
    page = offline_preview_docs.PAGE.read_text()
    assert all(f"- {gap}\n" in page for gap in NOT_MODELLED)


def test_the_offline_preview_lists_are_rewritten_when_the_page_drifts() -> None:
    current = offline_preview_docs.PAGE.read_text()
    stale = current.replace(f"- {NOT_MODELLED[0]}\n", "")
    assert stale != current
    assert offline_preview_docs.page_text(stale) == current
