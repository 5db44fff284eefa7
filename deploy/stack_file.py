"""A temporary copy of a stack file with config on top: what a preview of re-pinned config reads, so the committed
`Pulumi.<stack>.yaml` is never written (`pulumi preview --config-file`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml


@contextmanager
def overlaid_stack_file(stack_file: Path, overlay: Mapping[str, str]) -> Iterator[str | None]:
    """Yields the path of a copy of `stack_file` whose `config:` has `overlay` on top, or None when there is
    nothing to overlay (the stack file itself is read). The copy keeps every other top-level key (secrets
    provider, encryption salt), so `secure:` values still decrypt; it lives in a temporary directory, never in
    the checkout, and is removed afterwards."""
    if not overlay:
        yield None
        return
    document = yaml.safe_load(stack_file.read_text()) if stack_file.is_file() else None
    document = document or {}
    document["config"] = {**(document.get("config") or {}), **overlay}
    with tempfile.TemporaryDirectory(prefix="shipsafe-preview-") as directory:
        copy = Path(directory) / stack_file.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        yield str(copy)
