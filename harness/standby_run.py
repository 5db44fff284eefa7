"""`up`'s run of the program beside the first preview's, in a fork that stands by from before the first run.

The offline preview runs the program three times (`harness.phases.model_phases`): the first preview, `up`, and the
next release's preview. Only the last reads another run (`up`'s state, for its "same" steps); the first two start
from nothing and need only the secrets the first finds unset. The model ran them one after the other in one
process, and on two cores the second core had nothing to do while the first run went: the policy packs wait for its
view. At 200 workloads that was about 1.5 s of a preview of 8.5 s.

`StandbyRun` forks before the first run; the fork waits. Once the first run has registered `START_AFTER` resources
(counting an attempt that stopped at an unset secret, which registers next to nothing) it is told to run `up`, and
the preview takes its recording after the first run instead of running `up` itself. A smaller program never starts
it: the fork has to import and warm the SDKs again, which costs more than a short run saves (measured on two cores,
with the run started after 100 registrations: 50 workloads, about 300 a run, took 1.06x as long; 100 workloads
0.96x; 200 workloads 0.92x. Started after 400: staging and 100 workloads 1.00x, 200 workloads 0.93-0.95x). Below it,
the fork is stopped as soon as the first run is done.

The preview runs `up` itself, as before, unless the fork's run
- succeeded, with the same config: it found unset exactly the secrets the first run found (the preview's `up` is
  given those up front), and
- printed nothing (to stdout or stderr, Python's streams, C's or the descriptors): the preview's own run prints it,
  in its place among the rest, through the preview's own streams, encoding errors included. (The fork's streams are
  a file, not a terminal: a program printing only to a terminal prints nothing there.)
So a failure is met by the preview itself (its error, its traceback, what it registered). One difference remains,
and is listed in `harness.apiserver.NOT_MODELLED`: the fork's `up` starts from this process as it was before the
first run, the preview's own after it, and runs while the first run does, so a program keeping state in its own
modules between runs, or writing files the other run reads, sees it differently (the engine runs each in a process
of its own, one after the other).

Only on Linux (`os.fork`), and not once this process has talked gRPC (as `harness.pack_driver`); elsewhere `up`
runs after the first run. The preview waits for the fork's answer `ANSWER_WITHIN` seconds plus as long as its own
first run took; a fork that has not answered by then is killed and `up` runs here. Of SIGINT, SIGTERM and SIGHUP the
fork ignores those this process ignores and takes the default action of the others, and it dies with the thread
that made it (`PR_SET_PDEATHSIG`): a preview that ends, however it ends, leaves no fork running its program, whose
descriptors include its pipe to the packs' driver (which stops the packs at end-of-file). Of the descriptors it
inherited it closes only its copies of the preview's ends of its two pipes: objects of the parent's that it drops
(an event loop of a thread that does not exist here) close theirs when collected, and a number closed early could
by then belong to a file of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import logging
import os
import pickle
import select
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from harness import runtime
from harness.pack_driver import may_fork
from harness.recording import Recording

START_AFTER = 400
"""Registrations of the first run after which the fork runs `up` (see the module's measurements)."""

ANSWER_WITHIN = 60.0
"""Seconds the preview waits for the fork's answer beyond how long its own first run took (see the module)."""

_GO = b"1"
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1
_LOG = logging.getLogger(__name__)


class StandbyRun:
    """A fork made now that runs `run` (the program's `up`) once the first run registered `START_AFTER` resources
    (`registered`), or leaves. Use it as a context manager: leaving it stops the fork, running or not."""

    def __init__(self, run: Callable[[], Recording], *, enabled: bool = True) -> None:
        self._pid: int | None = None
        self._go = self._answer = -1
        self._registrations = itertools.count(1)
        self._started = False  # the fork was told to run
        self._lock = threading.Lock()  # `registered` (the SDK's threads) against `close`
        self._made = time.monotonic()  # the first run starts now: how long it took bounds the wait for the fork
        if enabled and may_fork():
            try:
                self._fork(run)
            except BaseException:  # a signal's exception before the caller could enter `with`
                self.close()
                raise

    def _fork(self, run: Callable[[], Recording]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pipes: list[int] = []
        try:
            for _ in range(2):
                pipes.extend(os.pipe())
        except OSError as error:  # out of descriptors: `up` runs here
            for fd in pipes:
                os.close(fd)
            _LOG.debug("no fork for up: %s", error)
            return
        go, self._go, self._answer, answer = pipes
        parent = os.getpid()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # none lands before the fork's handlers are set
        try:
            pid = os.fork()
            if pid:
                self._pid = pid  # before a signal can land: `close` stops it
        except OSError as error:  # no process to be had (a limit reached): `up` runs here
            for fd in (go, answer):
                os.close(fd)
            self._close_fds()
            _LOG.debug("no fork for up: %s", error)
            return
        finally:
            if os.getpid() == parent:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if pid == 0:
            _stand_by(run, go, answer, close=(self._go, self._answer), parent=parent, blocked=blocked)
        os.close(go)
        os.close(answer)

    def __enter__(self) -> StandbyRun:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def registered(self) -> None:
        """Told of each registration of the first run (on the SDK's worker threads: `itertools.count` hands each
        number out once)."""
        if self._pid is None or next(self._registrations) != START_AFTER:
            return
        with self._lock:
            if self._pid is None:  # closed meanwhile (the first run failed): its pipe may be another file's now
                return
            self._started = True
            with contextlib.suppress(OSError):  # the fork is gone (killed): `result` finds no answer
                os.write(self._go, _GO)

    def result(self, missing: Sequence[str]) -> Recording | None:
        """`up`'s recording from the fork when it may stand for the preview's own (see the module), listing the
        unset secrets as the preview's `up` lists them (`missing`, the first run's); otherwise None, and the caller
        runs `up` itself. Called once the first run is done."""
        if self._pid is None or not self._started:
            self.close()
            return None
        answer = self._read_answer(ANSWER_WITHIN + (time.monotonic() - self._made))
        self.close()
        if answer is None:
            _LOG.debug("up runs here: the fork did not answer in time")
            return None
        try:
            recording, printed, failed = pickle.loads(answer)
        except Exception:  # any way of not answering is a reason to run `up` here
            _LOG.debug("up runs here: the fork gave no answer")
            return None
        reason = (
            failed
            if recording is None
            else "the fork's run printed"
            if printed
            else "the fork's run found other secrets unset"
            if set(recording.placeholder_secrets) != set(missing)
            else None
        )
        if reason is not None:
            _LOG.debug("up runs here: %s", reason)
            return None
        recording.placeholder_secrets = list(missing)
        return recording

    def _read_answer(self, within: float) -> bytes | None:
        """All the fork wrote, once it closed its end; None if that took longer than `within` seconds."""
        chunks: list[bytes] = []
        deadline = time.monotonic() + within
        answer = select.poll()
        answer.register(self._answer, select.POLLIN)
        while (left := deadline - time.monotonic()) > 0 and answer.poll(left * 1000):
            chunk = os.read(self._answer, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
        return None

    def close(self) -> None:
        """Stops the fork (killed: standing by or running, it has nothing to finish) and reaps it."""
        with self._lock:
            pid, self._pid = self._pid, None
            self._close_fds()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):  # reaped already (SIGCHLD ignored)
            os.waitpid(pid, 0)

    def _close_fds(self) -> None:
        for fd in (self._go, self._answer):
            if fd >= 0:
                os.close(fd)
        self._go = self._answer = -1


def _stand_by(
    run: Callable[[], Recording], go: int, answer: int, *, close: Sequence[int], parent: int, blocked: set[int]
) -> NoReturn:
    """The fork: waits to be told to run, runs, answers; leaves without running anything of the preview's."""
    code = 1
    try:
        gc.freeze()  # no finaliser of an object of the preview's runs here (gRPC's, an event loop's)
        for signum in _SIGNALS:  # blocked since before the fork: the preview's handlers never run here
            ignored = signal.getsignal(signum) is signal.SIG_IGN
            signal.signal(signum, signal.SIG_IGN if ignored else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        for fd in close:  # its copies of the preview's ends: it reads end-of-file once the preview has gone
            os.close(fd)
        # The preview alive after `prctl` (else it died before: leave at once), and telling it to run.
        if os.getppid() == parent and os.read(go, 1) == _GO:
            payload = _ran(run)
            with open(answer, "wb") as pipe:
                pipe.write(payload)
        code = 0
    finally:
        os._exit(code)


def _ran(run: Callable[[], Recording]) -> bytes:
    """`run()`'s recording (None if it failed), whether it printed anything, and why it failed, pickled."""
    runtime.forget_event_loop()
    captured = tempfile.TemporaryFile()  # noqa: SIM115 - read back below
    for fd in (1, 2):
        os.dup2(captured.fileno(), fd)
    # New streams: the inherited ones' locks may have been held by a thread of the preview's at the fork.
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    try:
        recording: Recording | None = run()
    except Exception:  # the preview runs `up` again and meets it itself
        recording = None
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):  # a stream closed, or None
            stream.flush()  # type: ignore[union-attr]
    ctypes.CDLL(None).fflush(None)  # C stdio's buffers too
    printed = os.fstat(captured.fileno()).st_size > 0
    try:
        return pickle.dumps((recording, printed, "up failed in the fork"))
    except Exception:  # the preview runs `up` itself
        return pickle.dumps((None, printed, "the fork's recording does not pickle"))
