"""Every generated docs page, written or checked by one command: `python -m deploy.docs [--check] [PAGE ...]`.

A page is generated from the code it documents; a page generated in part (between markers) is rendered from its
current text, so the hand-written rest is kept. `--check` writes nothing and exits 1 naming each stale page (one
drift test runs it over every page listed here).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.docs import cli, configuration, offline_preview, policies
from harness.stack_config import REPO_ROOT


@dataclass(frozen=True)
class GeneratedPage:
    path: Path
    render: Callable[[str], str]
    """The page as it must be, given its current text ("" when it does not exist yet)."""

    @property
    def name(self) -> str:
        """How the command line names it: its path in the project (`docs/cli.md`)."""
        return self.path.relative_to(REPO_ROOT).as_posix()

    def texts(self) -> tuple[str, str]:
        """The page's current and rendered text."""
        current = self.path.read_text() if self.path.exists() else ""
        return current, self.render(current)


def pages() -> tuple[GeneratedPage, ...]:
    """Read at call time: a test points a generator's `PAGE` at a copy."""
    return (
        GeneratedPage(cli.PAGE, cli.page_text),
        GeneratedPage(configuration.REFERENCE, configuration.page_text),
        GeneratedPage(offline_preview.PAGE, offline_preview.page_text),
        GeneratedPage(policies.PAGE, policies.page_text),
    )


def main(argv: Sequence[str] | None = None) -> int:
    every = {page.name: page for page in pages()}
    parser = argparse.ArgumentParser(prog="python -m deploy.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each stale page")
    parser.add_argument(
        "pages", nargs="*", metavar="PAGE", help=f"only these pages (default: all of {', '.join(every)})"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.pages if name not in every]
    if unknown:
        parser.error(f"unknown page {', '.join(unknown)}: the generated pages are {', '.join(every)}")
    stale = 0
    for page in [every[name] for name in args.pages] or every.values():
        current, updated = page.texts()
        if updated == current:
            continue
        if args.check:
            print(f"{page.name} is stale: run python -m deploy.docs", file=sys.stderr)
            stale += 1
            continue
        page.path.parent.mkdir(parents=True, exist_ok=True)
        page.path.write_text(updated)
        print(f"wrote {page.name}", file=sys.stderr)
    return 1 if stale else 0
