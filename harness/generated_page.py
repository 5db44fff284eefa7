"""One way every generated docs page is written or checked: `python -m <generator> [--check]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def write_or_check(
    generator: str, description: str, page: Path, render: Callable[[str], str], argv: Sequence[str] | None
) -> int:
    """`render(current text)` gives the page as it must be; `--check` exits 1 when the file differs (the drift
    tests run it), otherwise the file is written."""
    parser = argparse.ArgumentParser(prog=f"python -m {generator}", description=description)
    parser.add_argument("--check", action="store_true", help=f"exit 1 when {page.name} is stale")
    args = parser.parse_args(argv)
    current = page.read_text() if page.exists() else ""
    updated = render(current)
    if args.check:
        if updated != current:
            print(f"{page} is stale: run python -m {generator}", file=sys.stderr)
            return 1
        return 0
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(updated)
    print(f"wrote {page}")
    return 0
