"""The process tree under a test's process, read from Linux's /proc: which policy packs a preview left running."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(child) for child in (task / "children").read_text().split())
    except FileNotFoundError:
        return found  # gone meanwhile
    return found.union(*(descendants(child) for child in found))


def packs_below(pid: int) -> set[int]:
    """The policy packs among `pid`'s descendants (the process driving them is a fork of the preview's)."""
    packs = set()
    for child in descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"pulumi.policy" in command:
            packs.add(child)
    return packs


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def still_running(pids: set[int], within: float) -> list[int]:
    """Those of `pids` still running after up to `within` seconds of waiting for them all to end."""
    deadline = time.monotonic() + within
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(pid for pid in pids if running(pid))


def kill_left(pids: Iterable[int]) -> None:
    """SIGKILL each of `pids` still running: what a failed test leaves behind."""
    for pid in pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)
