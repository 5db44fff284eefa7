"""A temporary copy of a stack file with config on top: what a preview of re-pinned config reads, so the committed
`Pulumi.<stack>.yaml` is never written (`pulumi preview --config-file`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from deploy.errors import ExitCode, ShipsafeError
from harness.stack_config import StackFileError, load_yaml


def stack_document(path: Path) -> dict[str, Any]:
    """A stack or project file as the Pulumi CLI reads it (`harness.stack_config`: duplicate keys refused, and the
    bounds of `harness.local_files`); anything refused is a CONFIG_ERROR naming the file."""
    try:
        document, _ = load_yaml(path)
    except StackFileError as error:
        raise ShipsafeError(str(error), ExitCode.CONFIG_ERROR) from None
    return document if isinstance(document, dict) else {}


@contextmanager
def overlaid_stack_file(stack_file: Path, overlay: Mapping[str, str]) -> Iterator[str | None]:
    """Yields the path of a copy of `stack_file` whose `config:` has `overlay` on top, or None when there is
    nothing to overlay (the stack file itself is read). The copy keeps every other top-level key (secrets
    provider, encryption salt), so `secure:` values still decrypt; it lives in a temporary directory, never in
    the checkout, and is removed afterwards."""
    if not overlay:
        yield None
        return
    document = stack_document(stack_file) if stack_file.is_file() else {}
    document["config"] = {**(document.get("config") or {}), **overlay}
    with tempfile.TemporaryDirectory(prefix="shipsafe-preview-") as directory:
        copy = Path(directory) / stack_file.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        yield str(copy)
