"""A preview ended by SIGTERM or SIGHUP (a CI runner's timeout, a closed terminal) takes its policy packs with it:
they are other processes, and left behind each would serve gRPC for ever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.exit_codes import ExitCode, exit_code_of
from harness.stack_config import REPO_ROOT

pytestmark = pytest.mark.slow  # an offline preview in a subprocess

WAIT_SECONDS = 120.0
"""Bound on every wait: the packs to start, the preview to end, the packs to go."""


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.update(int(child) for child in (task / "children").read_text().split())
    except FileNotFoundError:
        return found  # gone meanwhile
    return found.union(*(_descendants(child) for child in found))


def _packs(pid: int) -> set[int]:
    """The policy packs among `pid`'s descendants (the process driving them is a fork of the preview's)."""
    packs = set()
    for child in _descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"pulumi.policy" in command:
            packs.add(child)
    return packs


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from Linux's /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_a_preview_ended_by_a_signal_stops_its_policy_packs(signum: int) -> None:
    """SIGTERM and SIGHUP unwind the command, which stops its packs; SIGKILL ends it at once, and the process driving
    the packs (`harness.pack_driver`, a fork) sees its pipe close and stops them."""
    # Enough workloads that the preview is still running its program when its packs are up, on any machine.
    workloads = {f"w{i:03d}": {"replicas": 1, "command": ["python", "-m", "notes_app", "worker"]} for i in range(200)}
    command = [sys.executable, "-m", "deploy", "preview", "staging", "--offline", "--quiet"]
    command += ["--set", f"workloads={json.dumps(workloads)}", "--set", "postgres.maxConnections=5000"]
    preview = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        packs: set[int] = set()
        while len(packs) < 2 and preview.poll() is None and time.monotonic() < deadline:
            packs |= _packs(preview.pid)
            time.sleep(0.05)
        assert len(packs) == 2, "the preview's and the update's packs started"
        assert preview.poll() is None, "still previewing"
        preview.send_signal(signum)
        status = preview.wait(timeout=WAIT_SECONDS)
        deadline = time.monotonic() + WAIT_SECONDS
        while any(_running(pack) for pack in packs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pack for pack in packs if _running(pack)], "the packs outlived the preview"
    finally:
        for process in [preview.pid, *packs]:
            if _running(process):
                os.kill(process, signal.SIGKILL)
        preview.wait(timeout=WAIT_SECONDS)
        assert preview.stderr is not None
        preview.stderr.close()
    if signum == signal.SIGKILL:
        assert status == -signum
    else:
        assert status == 128 + signum, "the shell's status for a process a signal ended"
        assert exit_code_of(status) is ExitCode.FAILED
