"""What `docker build` sends to the builder: the build context less what its .dockerignore excludes."""

from __future__ import annotations

import fnmatch
from pathlib import Path


def sent(context: Path, path: Path) -> bool:
    """Whether `docker build` sends `path` of the context to the builder: not excluded by the context's
    .dockerignore, whose patterns match in order, the last match deciding and a `!` pattern re-including (moby
    `patternmatcher`; `**` any number of directories). A file the build never sees says nothing about its language:
    a Pulumi project's own requirements.txt beside a Node app's Dockerfile, for one."""
    ignore = context / ".dockerignore"
    if not ignore.is_file():
        return True
    relative = path.relative_to(context).as_posix()
    excluded = False
    for line in ignore.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip().removeprefix("./").strip("/")
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # a directory excludes what is under it
        if any(fnmatch.fnmatchcase(prefix, pattern) or _double_star(prefix, pattern) for prefix in prefixes):
            excluded = not negated
    return not excluded


def _double_star(relative: str, pattern: str) -> bool:
    """`**/name` and `dir/**`: any number of directories, as Go's filepath.Match alone does not allow."""
    return "**" in pattern and fnmatch.fnmatchcase(relative, pattern.replace("**/", "*").replace("/**", "*"))
