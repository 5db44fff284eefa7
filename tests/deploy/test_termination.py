"""A preview ended by SIGTERM or SIGHUP (a CI runner's timeout, a closed terminal) takes its policy packs with it:
they are other processes, and left behind each would serve gRPC for ever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deploy.exit_codes import ExitCode, exit_code_of
from harness import pack_driver
from harness.stack_config import REPO_ROOT
from tests.harness.process_tree import kill_left, packs_below, still_running

pytestmark = pytest.mark.slow  # an offline preview in a subprocess

WAIT_SECONDS = 120.0
"""Bound on every wait: the packs to start, the preview to end, the packs to go."""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from Linux's /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_preview_ended_by_a_signal_stops_its_policy_packs(signum: int) -> None:
    """SIGTERM and SIGHUP unwind the command, which stops its packs."""
    # Enough workloads that the preview is still running its program when its packs are up, on any machine.
    workloads = {f"w{i:03d}": {"replicas": 1, "command": ["python", "-m", "notes_app", "worker"]} for i in range(200)}
    command = [sys.executable, "-m", "deploy", "preview", "staging", "--offline", "--quiet"]
    command += ["--set", f"workloads={json.dumps(workloads)}", "--set", "postgres.maxConnections=5000"]
    preview = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        packs: set[int] = set()
        while len(packs) < 2 and preview.poll() is None and time.monotonic() < deadline:
            packs |= packs_below(preview.pid)
            time.sleep(0.05)
        assert preview.poll() is None, "still previewing"
        assert len(packs) == 2, f"the preview's and the update's packs started: {sorted(packs)}"
        preview.send_signal(signum)
        status = preview.wait(timeout=WAIT_SECONDS)
        assert not still_running(packs, WAIT_SECONDS), "the packs outlived the preview"
    finally:
        kill_left([preview.pid, *packs])
        preview.wait(timeout=WAIT_SECONDS)
        assert preview.stderr is not None
        said = preview.stderr.read().decode(errors="replace")
        preview.stderr.close()
    assert status == 128 + signum, f"the shell's status for a process a signal ended; it said:\n{said}"
    assert exit_code_of(status) is ExitCode.FAILED


KILLED_MID_PREVIEW = """
    import time
    from pathlib import Path
    from deploy.offline.prelaunch import prelaunch_preview_pack
    from deploy.offline.preview import policy_config_path
    from harness import pack_driver
    from harness.phases import Phase, model_phases
    from harness.stack_config import engine_config, read_stack_config
    prelaunch_preview_pack(Path("."), "staging")  # as `shipsafe preview --offline` does first thing
    project, values = read_stack_config("staging", Path("."))
    views = {view.phase: view.recording for view in model_phases("staging")}
    assert pack_driver.may_fork()
    config = policy_config_path(Path("."), "staging")
    told = engine_config(values)[0]
    with pack_driver.booted_in_a_fork(config, project=project, stack="staging", stack_config=told) as analyze:
        analyze(views[Phase.FIRST_PREVIEW])  # the prelaunched pack, taken by the fork
        analyze(views[Phase.AFTER_UP])  # the update's pack, started by the fork
        print("analyzed", flush=True)
        time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from Linux's /proc")
def test_a_preview_killed_outright_leaves_no_pack_running() -> None:
    """SIGKILL ends the preview's process at once; the fork driving the packs sees its pipe close and stops both: the
    one it started and the one the preview prelaunched, which it may signal but not wait for."""
    preview = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_MID_PREVIEW)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    packs: set[int] = set()
    try:
        assert preview.stdout is not None
        assert preview.stdout.readline() == "analyzed\n"
        packs = packs_below(preview.pid)
        assert len(packs) == 2, "the prelaunched pack was taken, not started again"
        background = os.getpriority(os.PRIO_PROCESS, preview.pid) + pack_driver.BACKGROUND_NICENESS
        assert {os.getpriority(os.PRIO_PROCESS, pack) for pack in packs} == {min(background, 19)}, "behind the program"
        preview.kill()
        assert preview.wait(timeout=WAIT_SECONDS) == -signal.SIGKILL
        assert not still_running(packs, WAIT_SECONDS), "a pack outlived the preview"
    finally:
        kill_left([preview.pid, *packs])
        preview.wait(timeout=WAIT_SECONDS)
        if preview.stdout is not None:
            preview.stdout.close()


SIGNAL_SWALLOWED = """
    import os, signal, threading, time
    from deploy import cli
    exit_on_signal = cli._ExitOnSignal()
    signal.signal(signal.SIGTERM, exit_on_signal)
    def swallowing():  # as the Pulumi SDK's `_get_source_position_for_frame`, run for every registration's frames
        try:
            time.sleep(30)  # the signal lands here
        except BaseException:
            return None
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    swallowing()
    print("swallowed", flush=True)
    if {over}:  # the command ends (`main`'s `finally`), and the next one runs in this process
        exit_on_signal.over.set()
        signal.signal(signal.SIGTERM, cli._ExitOnSignal())
    for _ in range(300):  # the program runs on: 3 s
        time.sleep(0.01)
    print("ran to its end", flush=True)
"""


@pytest.mark.parametrize(
    ("over", "status", "said"),
    [(False, 128 + signal.SIGTERM, "swallowed\n"), (True, 0, "swallowed\nran to its end\n")],
    ids=["raised-again", "not-into-the-next-command"],
)
def test_an_exit_a_library_swallows_is_raised_again_while_the_command_runs(over: bool, status: int, said: str) -> None:
    """The SDK catches BaseException where a signal often lands: the exit the signal raised must come back, or the
    preview runs to its end with its packs after a SIGTERM; once the command is over, it must not."""
    ended = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SIGNAL_SWALLOWED.format(over=over))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert (ended.returncode, ended.stdout) == (status, said), ended.stderr
