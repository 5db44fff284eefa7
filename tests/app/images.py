"""Building the app image for real: a stand-in base (Docker Hub is unreachable here) and timed builds.

The stand-in is Debian bookworm (debootstrap minbase + python3 + python3-venv) plus this machine's CA
bundle, imported into the engine once and reused while it exists.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import APP_DIR, docker

STAND_IN_BASE = "shipsafe-test-base:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What debian:bookworm-slim (under python:3.11-slim-bookworm) leaves out, so sizes compare with the real base.
SLIM_DPKG_EXCLUDES = (
    "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
    "path-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n"
    "path-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n"
    "path-exclude /usr/share/groff/*\npath-exclude /usr/share/lintian/*\n"
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def debian_mirror() -> str:
    """The mirror apt uses on this machine (deb822 or one-line sources), so debootstrap can reach it."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        if not source.is_file() or source.suffix not in ("", ".list", ".sources"):
            continue
        text = source.read_text(errors="replace")
        deb822 = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.MULTILINE)
        one_line = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+bookworm\s", text, re.MULTILINE)
        if match := deb822 or one_line:
            return match.group(1)
    return DEFAULT_MIRROR


def ensure_stand_in_base() -> str:
    if docker("image", "inspect", STAND_IN_BASE, check=False).returncode == 0:
        return STAND_IN_BASE
    root = Path(tempfile.mkdtemp(prefix="shipsafe-base-"))
    mirror = debian_mirror()
    try:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", str(root), mirror],
            check=True,
            capture_output=True,
            timeout=540,
        )
        shutil.copy(CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
        _make_slim(root)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", STAND_IN_BASE], stdin=tar.stdout, check=True, timeout=300)
        tar.wait(60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return STAND_IN_BASE


def _make_slim(root: Path) -> None:
    """Apply debian:bookworm-slim's dpkg excludes (for later installs too) and drop what they exclude,
    plus the package cache and lists (the Dockerfile runs apt-get update itself)."""
    (root / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(SLIM_DPKG_EXCLUDES)
    for directory in ("usr/share/man", "usr/share/info", "usr/share/groff", "usr/share/lintian"):
        shutil.rmtree(root / directory, ignore_errors=True)
    for path in [*root.glob("usr/share/doc/*/*"), *root.glob("usr/share/locale/*")]:
        if path.name in ("copyright", "locale.alias"):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)  # some doc dirs are symlinks to others, already emptied
    for pattern in ("var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"):
        for leftover in root.glob(pattern):
            leftover.unlink()


@dataclass(frozen=True)
class Build:
    tag: str
    seconds: float
    output: str


def build(
    tag: str,
    *,
    target: str = "production",
    context: Path = APP_DIR,
    dockerfile: Path | None = None,
    base_image: str = STAND_IN_BASE,
) -> Build:
    """`docker build` with host networking (no bridge on this machine) and the stand-in base."""
    command = ["build", "--network", "host", "--target", target, "--build-arg", f"BASE_IMAGE={base_image}"]
    command += ["-f", str(dockerfile or context / "Dockerfile"), "-t", tag, str(context)]
    started = time.monotonic()
    # The classic builder: its step log is what the cache checks read, with either docker CLI installed.
    result = docker(*command, timeout=900, check=False, env={"DOCKER_BUILDKIT": "0"})
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Build(tag, seconds, result.stdout + result.stderr)


def image_size(reference: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", reference).stdout)


def image_id(reference: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", reference).stdout.strip()


def image_layers(reference: str) -> list[str]:
    """Content digests of the filesystem layers: equal lists mean the same files, whatever the build date."""
    return list(json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", reference).stdout))
