"""Starting a policy pack's process as the engine does, apart from talking to it (`harness.analyzer`).

The engine starts the pack of each deployment as a plugin: the interpreter of the pack's virtualenv running
`pulumi.policy ENGINE_ADDRESS .` in the pack's directory, with the stack's identity, config and dry-run flag in the
environment (pulumi/pulumi `pkg/resource/plugin/analyzer_plugin.go` `NewPolicyAnalyzer`, `maybeAppendEnv`; the
Python language host's `RunPlugin`, `sdk/python/cmd/pulumi-language-python/main.go`). A started pack spends about
a third of a second importing the SDKs and itself, so a command that will analyze a stack can `prelaunch` the pack
it needs first before it imports anything heavy: the pack boots on the other core meanwhile. `PolicyPackProcess`
takes a prelaunched process only where it would start exactly the same one (interpreter, arguments, directory,
environment); otherwise it starts its own, and a prelaunched process nobody took is killed at exit.

Imports no gRPC and no SDK: it runs before them.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.local_files import LocalFileError, load_yaml

PLACEHOLDER_ENGINE = "127.0.0.1:0"
"""The engine address the pack is given: nothing answers there offline, and no policy of ours calls the engine."""


class PolicyPackError(Exception):
    """The pack would not start, answer, or accept its config."""


def pack_python(pack_dir: Path) -> Path:
    """The interpreter the shim picks: `runtime.options.virtualenv` of PulumiPolicy.yaml, else python3 on PATH."""
    manifest = pack_dir / "PulumiPolicy.yaml"
    if not manifest.is_file():
        raise PolicyPackError(f"failed to load the policy pack at {pack_dir}: no PulumiPolicy.yaml")
    try:
        document = load_yaml(manifest) or {}
    except LocalFileError as error:
        raise PolicyPackError(f"failed to load the policy pack at {pack_dir}: {error}") from None
    runtime = document.get("runtime") if isinstance(document, dict) else None
    virtualenv = (runtime.get("options") or {}).get("virtualenv") if isinstance(runtime, dict) else None
    if not virtualenv:
        return Path("python3")
    python = (pack_dir / str(virtualenv)).resolve() / "bin" / "python"
    if not python.is_file():
        raise PolicyPackError(f"{pack_dir / str(virtualenv)} doesn't appear to be a virtual environment")
    return python


@dataclass(frozen=True)
class PackLaunch:
    """How one pack process is started: what the engine would run, where, with what environment."""

    pack_dir: Path
    argv: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]

    def start(self, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            list(self.argv),
            cwd=self.pack_dir,
            env=dict(self.environment),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        _STARTED_BY[process.pid] = os.getpid()
        if _ANNOUNCE:
            _ANNOUNCE[0](process.pid)
        return process


_STARTED_BY: dict[int, int] = {}
"""Each pack process this module started, by pid: the pid of the process that started it."""


_ANNOUNCE: list[Callable[[int], object]] = []
"""Told the pid of each pack this process starts (`announce_starts`)."""


def announce_starts(tell: Callable[[int], object]) -> None:
    """From now on, `tell(pid)` each pack this process starts: the driving fork tells the preview's process, which
    stops them should the fork die first (`harness.pack_driver`)."""
    _ANNOUNCE[:] = [tell]


def started_here(process: subprocess.Popen[bytes]) -> bool:
    """Whether this process started `process`, and so may wait for it. A fork that took a pack its parent started
    (`harness.pack_driver`) may not: `waitpid` there fails with ECHILD, which `Popen.poll()` and `wait()` report
    as an exit with status 0 (CPython `subprocess.py` `_try_wait`, bpo-15756), so a running pack would look gone."""
    return _STARTED_BY.get(process.pid) == os.getpid()


def pack_launch(
    pack_dir: Path,
    *,
    project: str,
    stack: str,
    dry_run: bool,
    stack_config: dict[str, str],
    python: Path | None = None,
) -> PackLaunch:
    """The pack of a deployment of `project`/`stack`: a preview's (`dry_run`) or an update's."""
    interpreter = python or pack_python(pack_dir)
    # The engine starts the pack of each deployment with that deployment's dry-run flag, in the environment and in
    # ConfigureStack (pulumi/pulumi `pkg/engine/update.go` `PolicyAnalyzerOptions{DryRun: opts.DryRun}`,
    # `pkg/resource/plugin/analyzer_plugin.go` `maybeAppendEnv("PULUMI_DRY_RUN", ...)`): false for `pulumi up`.
    environment = {
        **os.environ,
        "PATH": f"{interpreter.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PULUMI_PROJECT": project,
        "PULUMI_STACK": stack,
        "PULUMI_DRY_RUN": "true" if dry_run else "false",
        "PULUMI_ORGANIZATION": "organization",
        # As the bundled Python language host's `RunPlugin` (pulumi/pulumi `sdk/python/cmd/pulumi-language-python/
        # main.go:1667-1674`): the stack's config as one JSON object (unset when empty).
        **({"PULUMI_CONFIG": json.dumps(stack_config)} if stack_config else {}),
    }
    argv = (str(interpreter), "-u", "-m", "pulumi.policy", PLACEHOLDER_ENGINE, ".")
    return PackLaunch(pack_dir, argv, tuple(sorted(environment.items())))


_PRELAUNCHED: dict[PackLaunch, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}


def prelaunch(launch: PackLaunch) -> None:
    """Start `launch` now, for a `PolicyPackProcess` to take later (`take_prelaunched`)."""
    if launch not in _PRELAUNCHED:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - handed over with the process, or closed at exit
        _PRELAUNCHED[launch] = (launch.start(stderr), stderr)


def lower_priority(niceness: int) -> None:
    """This process, the packs it starts from now on (they inherit it) and those prelaunched so far, `niceness`
    lower in the scheduler's eyes than this process was."""
    lowered = os.nice(niceness)
    for process, _ in _PRELAUNCHED.values():
        with contextlib.suppress(OSError):  # gone already
            os.setpriority(os.PRIO_PROCESS, process.pid, lowered)


def take_prelaunched(launch: PackLaunch) -> tuple[subprocess.Popen[bytes], IO[bytes]] | None:
    """The process started by `prelaunch(launch)` and its stderr file, now the caller's; None if there is none."""
    return _PRELAUNCHED.pop(launch, None)


@atexit.register
def stop_untaken() -> None:
    """Stops (and reaps) every prelaunched process nobody took in this process."""
    for process, stderr in _PRELAUNCHED.values():
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        stderr.close()
    _PRELAUNCHED.clear()
