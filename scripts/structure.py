"""The project's structure in numbers: files and lines of Python per package, and which package imports which.

`python scripts/structure.py [PROJECT_DIR]` prints both as Markdown tables. A package is a top-level folder with
Python in it (the program's own `__main__.py` at the top counts as `program`); a folder that is not itself
importable (`policy/`, `app/`) owns the packages inside it (`shipsafe_policies`, `notes_app`), which run elsewhere
under their own names. Imports are read with `ast`, so nothing is imported or run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

PROGRAM = "program"
"""The package name of the Pulumi program's entry point, `__main__.py` at the top of the project."""


@dataclass
class Package:
    name: str
    files: int = 0
    lines: int = 0
    imports: set[str] = field(default_factory=set)
    """The other packages of the project its modules import."""


def python_files(root: Path) -> list[Path]:
    """The project's Python files as git tracks them (the working tree's, untracked ones included), else all."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode == 0:
        return sorted(root / line for line in listed.stdout.splitlines() if (root / line).is_file())
    return sorted(
        path for path in root.rglob("*.py") if not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def package_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return PROGRAM if len(parts) == 1 else parts[0]


def import_roots(files: list[Path], root: Path) -> dict[str, str]:
    """Each top-level import name the project's files answer to, with the package that owns it: a top-level
    folder's own name, and the packages inside a folder that is not itself a package (`shipsafe_policies`)."""
    roots: dict[str, str] = {}
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) == 1:
            continue
        roots.setdefault(parts[0], parts[0])
        if len(parts) > 2 and not (root / parts[0] / "__init__.py").exists():
            roots.setdefault(parts[1], parts[0])
    return roots


def imported_names(path: Path) -> set[str]:
    """The first segment of every absolute import in the module (relative imports stay inside its package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def module_imports(root: Path) -> dict[Path, set[str]]:
    """Each Python file of the project with the other packages of the project it imports."""
    files = python_files(root)
    roots = import_roots(files, root)
    found = {}
    for path in files:
        own = package_of(path, root)
        found[path] = {roots[name] for name in imported_names(path) if name in roots} - {own}
    return found


def packages(root: Path) -> dict[str, Package]:
    found: dict[str, Package] = {}
    for path, imports in module_imports(root).items():
        package = found.setdefault(package_of(path, root), Package(package_of(path, root)))
        package.files += 1
        package.lines += len(path.read_text().splitlines())
        package.imports |= imports
    return dict(sorted(found.items()))


def report(root: Path) -> str:
    found = packages(root)
    importers: dict[str, list[str]] = defaultdict(list)
    for package in found.values():
        for imported in package.imports:
            importers[imported].append(package.name)
    rows = ["| package | files | lines | imports | imported by |", "|---|---:|---:|---|---|"]
    for package in found.values():
        imports = ", ".join(sorted(package.imports)) or "-"
        rows.append(
            f"| {package.name} | {package.files} | {package.lines} | {imports} | "
            f"{', '.join(sorted(importers[package.name])) or '-'} |"
        )
    total_files = sum(package.files for package in found.values())
    total_lines = sum(package.lines for package in found.values())
    rows.append(f"| all | {total_files} | {total_lines} | | |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(report(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent).resolve()))
