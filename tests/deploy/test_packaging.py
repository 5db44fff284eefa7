"""What the wheel carries: every package below the tool's, the program's components' and the pack's top-level
packages, as setuptools discovers them from pyproject.toml (nothing listed by hand to drift)."""

from __future__ import annotations

import tomllib

from setuptools import find_packages

from harness.stack_config import REPO_ROOT


def test_every_package_of_the_tool_components_and_pack_ships() -> None:
    found = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = {name for where in found["where"] for name in find_packages(REPO_ROOT / where, include=found["include"])}
    expected = {
        ".".join(init.parent.relative_to(REPO_ROOT / where).parts)
        for where, top in (("", "deploy"), ("", "harness"), ("", "components"), ("policy", "shipsafe_policies"))
        for init in (REPO_ROOT / where / top).rglob("__init__.py")
    }
    assert expected <= shipped
    assert not {name for name in shipped if name.split(".")[0] == "tests"}


def test_an_app_repository_serves_the_same_pack_as_this_project() -> None:
    """The PolicyPack is built only in a pack directory's `__main__.py`: the one `shipsafe new` writes is this one's."""
    ours = (REPO_ROOT / "policy" / "__main__.py").read_text().split('"""', 2)[2]
    scaffolded = (REPO_ROOT / "deploy" / "app_template" / "policy" / "__main__.py.tmpl").read_text().split('"""', 2)[2]
    assert scaffolded == ours
