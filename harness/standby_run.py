"""`up`'s run of the program beside the first preview's, in a fork that stands by from before the first run.

The offline preview runs the program three times (`harness.phases.model_phases`): the first preview, `up`, and the
next release's preview. Only the last reads another run (`up`'s state, for its "same" steps); the first two start
from nothing and need only the secrets the first finds unset. The engine runs each as a process of its own
(`pulumi preview`, `pulumi up`); the model ran them one after the other in one process, and on two cores the second
core had nothing to do while the first run went: the policy packs wait for its view. At 200 workloads that was
about 1.5 s of a preview of 8.5 s.

`StandbyRun` forks before the first run; the fork waits. Once the first run has registered `START_AFTER` resources
it is told to run `up`, and the preview takes its recording after the first run instead of running `up` itself.
A smaller program is never started: the fork has to import and warm the SDKs again, which costs more than a short
run saves (measured on two cores, with the run started after 100 registrations: 50 workloads, about 300 a run, took
1.06x as long; 100 workloads 0.96x; 200 workloads 0.92x. Started after 400: 100 workloads 1.00x, 200 workloads
0.94x). Below it, the fork leaves as soon as the first run is done.

The recording is the one the preview's own `up` would have made, or is not used:
- the fork's run found the secrets unset that the first run found (the preview's `up` would have been given them
  up front: the same config), else the preview runs `up` itself;
- a run that fails in the fork is run again by the preview, which meets the failure itself (its error, its
  traceback, what it registered);
- what the run printed is captured in the fork and printed by the preview when it takes the recording, where its
  own `up` would have printed it. The fork writes nothing to the terminal: a display thread of the preview (rich's
  live progress) may have held the stream's lock at the fork.

Only on Linux (`os.fork`), as `harness.pack_driver`; elsewhere `up` runs after the first run, as before. The fork
runs with the default signal handlers. A preview that ends (an error, a signal it handles) stops it in `close`;
killed outright, its fork leaves by itself: at once if it stands by (its pipe reads end-of-file), once its run is
done if it runs `up` (nobody reads its answer). It closes none of the descriptors it inherited: objects of the
parent's that the fork drops (an event loop of a thread that does not exist here) close theirs when collected, and a
number closed early could by then belong to a file of the fork's.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import IO, NoReturn

from harness import runtime
from harness.recording import Recording

AVAILABLE = sys.platform == "linux"
"""Forking is used on Linux only."""

START_AFTER = 400
"""Registrations of the first run after which the fork runs `up` (see the module's measurements)."""

_GO = b"1"
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StandbyRun:
    """A fork made now that runs `run` (the program's `up`) once the first run registered `START_AFTER` resources
    (`registered`), or leaves. Use it as a context manager: leaving it stops the fork, running or not."""

    def __init__(self, run: Callable[[], Recording], *, enabled: bool = True) -> None:
        self._pid: int | None = None
        self._registrations = itertools.count(1)
        self._started = False
        if not (enabled and AVAILABLE):
            return
        go, self._go = os.pipe()
        self._answer, answer = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:  # no process to be had (a limit reached): `up` runs here
            for fd in (go, self._go, self._answer, answer):
                os.close(fd)
            return
        if pid == 0:
            os.close(self._go)  # its own copy of the parent's ends: it reads end-of-file once the parent has gone
            os.close(self._answer)
            _stand_by(run, go, answer)
        os.close(go)
        os.close(answer)
        self._pid = pid

    def __enter__(self) -> StandbyRun:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def registered(self) -> None:
        """Told of each registration of the first run (on the SDK's worker threads: `itertools.count` hands each
        number out once)."""
        if self._pid is not None and next(self._registrations) == START_AFTER:
            self._started = True
            with contextlib.suppress(OSError):  # the fork is gone (killed): `result` finds no answer
                os.write(self._go, _GO)

    def result(self, missing: Sequence[str]) -> Recording | None:
        """`up`'s recording from the fork, when it ran and found unset exactly the secrets `missing` the first run
        found, listed as the preview's own `up` lists them; otherwise None, and the caller runs `up` itself."""
        if self._pid is None or not self._started:
            self.close()
            return None
        with open(self._answer, "rb") as pipe:
            self._answer = -1
            answer = pipe.read()
        self.close()
        try:
            recording, printed, logged = pickle.loads(answer)
        except Exception:  # the fork died before answering (killed, out of memory)
            return None
        if recording is None or set(recording.placeholder_secrets) != set(missing):
            return None
        sys.stdout.write(printed)
        sys.stderr.write(logged)
        recording.placeholder_secrets = list(missing)
        return recording

    def close(self) -> None:
        """Stops the fork (told to leave if standing by, killed if running) and reaps it."""
        if self._pid is None:
            return
        os.close(self._go)
        if self._answer >= 0:
            os.close(self._answer)
        if self._started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
        os.waitpid(self._pid, 0)
        self._pid = None


def _stand_by(run: Callable[[], Recording], go: int, answer: int) -> NoReturn:
    """The fork: waits to be told to run, runs, answers; leaves without running anything of the preview's."""
    code = 1
    try:
        for signum in _SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        if os.read(go, 1) == _GO:
            payload = _ran(run)
            with open(answer, "wb") as pipe:
                pipe.write(payload)
        code = 0
    finally:
        os._exit(code)


def _ran(run: Callable[[], Recording]) -> bytes:
    """`run()`'s recording (None if it failed) and what it printed to stdout and stderr, pickled."""
    runtime.forget_event_loop()
    captured = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]  # noqa: SIM115 - read back below
    for fd, file in zip((1, 2), captured, strict=True):
        os.dup2(file.fileno(), fd)
    sys.stdout, sys.stderr = (_text(1), _text(2))
    try:
        recording: Recording | None = run()
    except Exception:
        recording = None
    sys.stdout.flush()
    sys.stderr.flush()
    printed, logged = (_read(file) for file in captured)
    try:
        return pickle.dumps((recording, printed, logged))
    except Exception:  # a recording that does not pickle: the preview runs `up` itself
        return pickle.dumps((None, "", ""))


def _text(fd: int) -> IO[str]:
    return open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False)


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode("utf-8", errors="replace")
