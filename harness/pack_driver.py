"""The policy packs of a preview, driven from a forked process of their own.

Building each request, serialising it, keeping the reuse keys and reading the answers is Python work in the
process that talks to the packs: about 2 s of CPU over the six views at 200 workloads. In the preview's own
process it shares one interpreter lock with the program's runs and the modelling, so the preview took as long as
both together. `booted_in_a_fork` runs `harness.analyzer.booted_in_background` in a fork of the preview's process,
made before this process talks gRPC to anything (grpcio supports a fork only before its first use); the preview sends
each modelled view there (pickled) and gets its report back. The packs are started, configured and asked exactly as
before (the same `analyzer` code, in the child), so every report is the one the preview made in process.

Only on Linux (`os.fork`; macOS's system frameworks are not fork-safe); elsewhere the packs are driven in process.
The child leaves with `os._exit` once its packs are closed: it runs no atexit handler and flushes nothing it
inherited. When the preview's process ends, however it ends, the child reads end-of-file and closes its packs.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from multiprocessing.connection import Connection, Pipe
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


_STARTED = -1
"""The id of the child's first message: whether `booted_in_background` was entered."""
_STOPPED = "the process driving the policy packs stopped"


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

    def wait_started(self) -> None:
        try:
            _, ok, value = self._connection.recv()
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
                with self._state:
                    answer = self._pending.pop(number)
                if ok:
                    answer.set_result(value)
                else:
                    answer.set_exception(value)
        except (EOFError, OSError):
            with self._state:
                self._stopped = True
                unanswered, self._pending = list(self._pending.values()), {}
            for answer in unanswered:
                answer.set_exception(PolicyPackError(_STOPPED))

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
        # A pack the command prelaunched was taken, and stopped, by the child; this process started it and reaps it.
        pack_launch.stop_untaken()


def _serve(connection: Connection, boot: Callable[[], Booted]) -> None:
    """The child: enters `booted_in_background`, answers each view on its pack's own worker (the packs of the
    previews and of the update work side by side, as in process), and leaves once told to or orphaned."""
    code = 0
    try:
        try:
            context = boot()
            analyze = context.__enter__()
        except BaseException as error:
            _send(connection, threading.Lock(), _STARTED, False, error)
            return
        sending = threading.Lock()
        _send(connection, sending, _STARTED, True, None)
        workers = {dry_run: ThreadPoolExecutor(max_workers=1) for dry_run in (True, False)}

        def answer(number: int, recording: Recording) -> None:
            try:
                _send(connection, sending, number, True, analyze(recording))
            except BaseException as error:
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
    with sending:
        try:
            connection.send((number, ok, value))
        except (EOFError, OSError):
            pass  # nobody is listening any more
        except Exception:  # the value does not pickle: an unexpected error, carried as its traceback
            text = "".join(traceback.format_exception(value)) if isinstance(value, BaseException) else repr(value)
            connection.send((number, False, RuntimeError(text)))
