"""The installed `shipsafe` carries every package of the tool: setuptools installs only the packages listed."""

from __future__ import annotations

import tomllib

from harness.runtime import REPO_ROOT


def test_every_package_below_a_listed_one_is_listed() -> None:
    listed = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    below = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for top in listed
        if "." not in top
        for init in (REPO_ROOT / top).rglob("__init__.py")
    }
    assert set(listed) == below
