"""`harness/` is the engine model only: it imports nothing of the tool, the program's components or the pack.

The import graph is read by scripts/structure.py (the structure numbers in docs/development.md come from it)."""

from __future__ import annotations

from pathlib import Path

from harness.stack_config import REPO_ROOT
from scripts.structure import PROGRAM, module_imports, packages, report

TOOL = {"components", "deploy", "policy", PROGRAM}
"""What the engine model may not import: the program, its components, the pack and the tool built on the model."""


def test_the_engine_model_imports_nothing_of_the_tool() -> None:
    offending = {
        path.relative_to(REPO_ROOT).as_posix(): sorted(imports & TOOL)
        for path, imports in module_imports(REPO_ROOT).items()
        if path.relative_to(REPO_ROOT).parts[0] == "harness" and imports & TOOL
    }
    assert not offending, offending


def _project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_packages_lines_and_imports_are_read_from_the_source(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        {
            "__main__.py": "from engine.model import run\n",
            "engine/__init__.py": "",
            "engine/model.py": "import json\nfrom . import other\n\n\ndef run() -> None: ...\n",
            "tool/__init__.py": "import engine.model\nfrom pack_rules import rule\n",
            "pack/pack_rules/__init__.py": "rule = 1\n",
            "pack/__main__.py": "import pack_rules\n",
        },
    )
    found = packages(project)
    assert {name: (p.files, p.lines, p.imports) for name, p in found.items()} == {
        PROGRAM: (1, 1, {"engine"}),
        "engine": (2, 5, set()),
        "pack": (2, 2, set()),  # the pack's own package, under its own import name
        "tool": (1, 2, {"engine", "pack"}),
    }
    table = report(project)
    assert "| engine | 2 | 5 | - | program, tool |" in table
    assert "| all | 6 | 10 | | |" in table


def test_tests_are_laid_out_like_the_code() -> None:
    tests = REPO_ROOT / "tests"
    assert sorted(path.name for path in tests.glob("*.py")) == ["conftest.py"]
    laid_out = {path.name for path in tests.iterdir() if path.is_dir() and any(path.glob("test_*.py"))}
    # The program's entry point is tested with its components, the bench and these scripts beside what they measure.
    assert laid_out == set(packages(REPO_ROOT)) - {PROGRAM, "tests", "bench", "scripts"}
