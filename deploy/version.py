"""shipsafe's version: `shipsafe --version`, and the package metadata (`pyproject.toml` reads it from here)."""

VERSION = "0.12.0"
