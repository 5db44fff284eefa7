"""The policy packs of a preview, driven from a forked process of their own.

Building each request, serialising it, keeping the reuse keys and reading the answers is Python work in the
process that talks to the packs: about 2 s of CPU over the six views at 200 workloads. In the preview's own
process it shares one interpreter lock with the program's runs and the modelling, so the preview took as long as
both together. `booted_in_a_fork` runs `harness.analyzer.booted_in_background` in a fork of the preview's process,
made before this process talks gRPC to anything (grpcio supports a fork only before its first use); the preview sends
each modelled view there (pickled) and gets its report back. The packs are started, configured and asked exactly as
before (the same `analyzer` code, in the child), so every report is the one the preview made in process.

Only on Linux (`os.fork`; macOS's system frameworks are not fork-safe); elsewhere the packs are driven in process.
The child leaves with `os._exit` once its packs are closed: it runs no atexit handler, and it writes nothing to
stdout or stderr (a display thread of the parent, such as rich's live progress, may have held their locks at the
fork). When the preview's process ends, however it ends, the child reads end-of-file and closes its packs.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from multiprocessing.connection import Connection, Pipe
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from harness import analyzer, pack_launch
from harness.analyzer import POLICY_DIR, AnalysisReport, PolicyPackError
from harness.recording import Recording

AVAILABLE = sys.platform == "linux"
"""Forking is used on Linux only."""


Booted = AbstractContextManager[Callable[[Recording], AnalysisReport]]
"""What `booted_in_background` returns: entered, it gives `analyze(recording)`."""


def may_fork() -> bool:
    return AVAILABLE and not analyzer.talked_grpc()


BACKGROUND_NICENESS = 10
"""How much lower than the preview's process the fork and its packs run. The preview's process runs the program,
which every view waits for; they work beside it on what the two cores have left. At 200 workloads, 9.3-9.6 s
became 8.5-8.7 s; staging is unchanged (its packs have a core of their own)."""

_STARTED = -1
"""The id of the child's first message: whether `booted_in_background` was entered."""
_PACK_STARTED = -2
"""The id of a message with the pid of a pack the child started."""
_STOPPED = "the process driving the policy packs stopped"
_WHERE = "in the process driving the policy packs"


@contextmanager
def booted_in_a_fork(
    policy_config_path: Path,
    *,
    project: str,
    stack: str,
    pack_dir: Path = POLICY_DIR,
    stack_config: Mapping[str, str] | None = None,
    reuse: str | None = None,
) -> Iterator[Callable[[Recording], AnalysisReport]]:
    """`analyzer.booted_in_background` with these arguments, run in a forked child; yields `analyze`. In process
    instead where forking is not used, or where this process has talked gRPC already (the child would inherit that
    state half-copied: grpcio supports a fork only before its first use)."""

    def boot() -> Booted:
        return analyzer.booted_in_background(
            policy_config_path, project=project, stack=stack, pack_dir=pack_dir, stack_config=stack_config, reuse=reuse
        )

    if not may_fork():
        with boot() as analyze:
            yield analyze
        return
    ours, theirs = Pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        ours.close()
        _serve(theirs, boot)
    theirs.close()
    driver = _Driver(ours, pid)
    try:
        driver.wait_started()
        yield driver.analyze
    finally:
        driver.close()


class _Driver:
    """The preview's end: sends views, and a reader thread hands each report (or error) to the view's caller."""

    def __init__(self, connection: Connection, pid: int) -> None:
        self._connection, self._pid = connection, pid
        self._ids = itertools.count()
        self._pending: dict[int, Future[AnalysisReport]] = {}
        self._stopped = False
        self._state = threading.Lock()  # guards `_pending` and `_stopped`
        self._sending = threading.Lock()  # one message on the pipe at a time
        self._reader: threading.Thread | None = None
        self._packs: list[int] = []  # a pidfd per pack the child started (else its pid): stopped if the child dies

    def wait_started(self) -> None:
        try:
            number, ok, value = self._connection.recv()
            while number == _PACK_STARTED:  # a pack may start before the child has entered
                self._packs.append(_handle(value))
                number, ok, value = self._connection.recv()
        except (EOFError, OSError) as error:
            raise PolicyPackError(_STOPPED) from error
        if not ok:
            raise value
        self._reader = threading.Thread(target=self._read, name="pack-driver-reader", daemon=True)
        self._reader.start()

    def analyze(self, recording: Recording) -> AnalysisReport:
        answer: Future[AnalysisReport] = Future()
        with self._state:
            if self._stopped:
                raise PolicyPackError(_STOPPED)
            number = next(self._ids)
            self._pending[number] = answer
        try:
            with self._sending:
                self._connection.send((number, recording))
        except OSError as error:  # the child is gone; the reader fails what it was asked
            raise PolicyPackError(_STOPPED) from error
        return answer.result()

    def _read(self) -> None:
        try:
            while True:
                number, ok, value = self._connection.recv()
                if number == _PACK_STARTED:
                    self._packs.append(_handle(value))
                    continue
                with self._state:
                    answer = self._pending.pop(number)
                if ok:
                    answer.set_result(value)
                else:
                    answer.set_exception(value)
        except BaseException as error:  # the child is gone (end of file), or its message does not load
            stopped = PolicyPackError(_STOPPED if isinstance(error, EOFError | OSError) else f"{_STOPPED}: {error!r}")
            with self._state:
                self._stopped = True
                unanswered, self._pending = list(self._pending.values()), {}
            for answer in unanswered:
                answer.set_exception(stopped)
            self._stop_packs()

    def _stop_packs(self) -> None:
        """Its packs, should the child have died without closing them (a pidfd names the process itself, so a
        pack already gone is never confused with a later process given its pid)."""
        for pack in self._packs:
            with contextlib.suppress(ProcessLookupError, OSError):
                if _PIDFDS:
                    signal.pidfd_send_signal(pack, signal.SIGKILL)
                else:
                    os.kill(pack, signal.SIGKILL)

    def close(self) -> None:
        try:
            with self._sending:
                self._connection.send(None)
        except OSError:
            pass  # the child is gone already
        if self._reader is not None:
            self._reader.join()
        self._connection.close()
        os.waitpid(self._pid, 0)
        self._stop_packs()
        if _PIDFDS:
            for pack in self._packs:
                os.close(pack)
        # A pack this process prelaunched was taken and killed (by pid) by the child; its starter (here) reaps it.
        pack_launch.stop_untaken()


_PIDFDS = hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")
"""Linux 5.3 and later: a process handle that outlives nothing but the process it names."""


def _handle(pid: int) -> int:
    """A pidfd of `pid` where the system has them, else the pid (good while the child has not reaped it)."""
    if _PIDFDS:
        with contextlib.suppress(ProcessLookupError, OSError):
            return os.pidfd_open(pid)
    return pid


def _serve(connection: Connection, boot: Callable[[], Booted]) -> None:
    """The child: enters `booted_in_background`, answers each view on its pack's own worker (the packs of the
    previews and of the update work side by side, as in process), and leaves once told to or orphaned."""
    code = 0
    pack_launch.lower_priority(BACKGROUND_NICENESS)
    sending = threading.Lock()
    try:
        pack_launch.announce_starts(lambda pid: _send(connection, sending, _PACK_STARTED, True, pid))
        try:
            context = boot()
            analyze = context.__enter__()
        except BaseException as error:
            _send(connection, sending, _STARTED, False, error)
            return
        _send(connection, sending, _STARTED, True, None)
        workers = {dry_run: ThreadPoolExecutor(max_workers=1) for dry_run in (True, False)}

        def answer(number: int, recording: Recording) -> None:
            try:
                _send(connection, sending, number, True, analyze(recording))
            except BaseException as error:
                if _WHERE not in "".join(getattr(error, "__notes__", ())):  # a failed boot fails every view alike
                    error.add_note(f"{_WHERE}:\n{_traceback(error)}")
                _send(connection, sending, number, False, error)

        try:
            while (message := _received(connection)) is not None:
                number, recording = message
                workers[recording.preview].submit(answer, number, recording)
        finally:
            for worker in workers.values():
                worker.shutdown(wait=True, cancel_futures=True)
            context.__exit__(None, None, None)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _received(connection: Connection) -> Any:
    try:
        return connection.recv()
    except (EOFError, OSError):
        return None  # the preview's process is gone


def _send(connection: Connection, sending: threading.Lock, number: int, ok: bool, value: Any) -> None:
    """Sends `value` as it will load on the other side; one that does not pickle and load again (an unexpected
    error of an odd class) goes as a RuntimeError carrying its traceback."""
    try:
        message = ForkingPickler.dumps((number, ok, value))
        pickle.loads(message)
    except Exception:
        text = _traceback(value) if isinstance(value, BaseException) else repr(value)
        message = ForkingPickler.dumps((number, False, RuntimeError(text)))
    with sending, contextlib.suppress(EOFError, OSError):  # nobody is listening any more
        connection.send_bytes(message)


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))
