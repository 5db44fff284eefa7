"""`up`'s run in a fork beside the first preview's (`harness.standby_run`): the phases it gives are the ones the
preview's own runs give, and whatever goes wrong in the fork, the preview runs `up` itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi.output import Unknown

from harness import analyzer, pack_driver, phases, standby_run
from harness.phases import PhaseRecording, model_phases
from harness.recording import Recording
from harness.runtime import ProgramFailed
from harness.stack_config import REPO_ROOT
from tests.conftest import STACKS, pinned
from tests.harness.process_tree import descendants, kill_left, still_running

pytestmark = pytest.mark.skipif(not pack_driver.AVAILABLE, reason="the fork is made on Linux only")

NEVER = 10**9
"""A `START_AFTER` no program reaches: the runs one after the other, in this process."""


@pytest.fixture(autouse=True)
def forks_after_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test process may have talked gRPC to a pack before (the preview's never does: its packs are driven from a
    fork), and a preview then makes no fork (`analyzer.talked_grpc`). The fork runs no gRPC and collects nothing,
    so the tests make it regardless, whatever ran before them in this process."""
    monkeypatch.setattr(analyzer, "talked_grpc", lambda: False)


@pytest.fixture
def runs_here(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each program run made in this process (not in the fork), as whether it was a preview."""
    made: list[bool] = []
    real = phases.run_stack

    def counted(*args: Any, **kwargs: Any) -> Recording:
        made.append(bool(kwargs.get("preview")))
        return real(*args, **kwargs)

    monkeypatch.setattr(phases, "run_stack", counted)
    return made


def _plain(value: Any) -> Any:
    """Unknown outputs compare by identity; as plain markers, two recordings compare by value."""
    if isinstance(value, Unknown):
        return "<unknown>"
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _facts(views: list[PhaseRecording]) -> list[Any]:
    return [
        (
            view.phase,
            view.server,
            view.sources,
            view.recording.resources,
            *(_plain(getattr(view.recording, name)) for name in ("stack_outputs", "component_outputs")),
            view.recording.placeholder_secrets,
            view.recording.preview,
        )
        for view in views
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_up_run_in_the_fork_gives_the_phases_the_preview_gives(
    stack: str, runs_here: list[bool], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The second time, this process has run the program before: the fork inherits its event loops, which must
    neither run nor be closed there (`runtime.forget_event_loop`)."""
    alone, forked = _both_ways(monkeypatch, lambda: model_phases(stack, config_overrides=pinned(stack)))
    assert runs_here == [True, False, True, True, True], "the second time, `up` ran in the fork"
    assert _facts(forked) == _facts(alone)
    assert capfd.readouterr() == ("", ""), "nothing printed, nothing relayed"


def test_a_program_below_the_threshold_runs_up_here_and_the_fork_leaves(
    runs_here: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    forks: list[int] = []
    real_fork = os.fork

    def counted_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(standby_run.os, "fork", counted_fork)
    before = descendants(os.getpid())
    views = model_phases("staging", config_overrides=pinned("staging"))
    assert len(views[0].recording.resources) < standby_run.START_AFTER
    assert len(forks) == 1, "a fork stood by"
    assert runs_here == [True, False, True], "the three runs, here"
    assert descendants(os.getpid()) <= before, "the fork that stood by is gone"


def _project(tmp_path: Path, *program: str) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: standby\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    (tmp_path / "__main__.py").write_text("".join(textwrap.dedent(part) for part in program))
    return tmp_path


def _both_ways(
    monkeypatch: pytest.MonkeyPatch, run: Callable[[], list[PhaseRecording]]
) -> Iterator[list[PhaseRecording]]:
    for start_after in (NEVER, 1):
        monkeypatch.setattr(standby_run, "START_AFTER", start_after)
        yield run()


THINGS = """
    for number in range(5):
        pulumi.CustomResource("test:index:Thing", f"thing-{number}", {"number": number})
"""


def _reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == standby_run.__name__]


@pytest.mark.parametrize(
    ("required_in", "found"),
    [
        ("not pulumi.runtime.is_dry_run()", ["standby:first", "standby:second"]),  # `up` needs one more
        ("pulumi.runtime.is_dry_run()", ["standby:first", "standby:second"]),  # the previews need one more
    ],
    ids=["up-needs-more", "previews-need-more"],
)
def test_secrets_the_fork_found_otherwise_send_up_back_to_the_preview(
    required_in: str,
    found: list[str],
    tmp_path: Path,
    runs_here: list[bool],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The fork's config was not the one the preview's `up` gets (the first run's unset secrets filled up front), so
    its recording is not taken."""
    project = _project(
        tmp_path,
        f"""
        import pulumi
        config = pulumi.Config()
        config.require_secret("first")
        if {required_in}:
            config.require_secret("second")
        """,
        THINGS,
    )
    caplog.set_level("DEBUG", logger=standby_run.__name__)
    alone, forked = _both_ways(monkeypatch, lambda: model_phases("dev", project_dir=project))
    assert runs_here == [True, False, True] * 2, "`up` ran here both times"
    assert _reasons(caplog) == ["up runs here: the fork's run found other secrets unset"]
    assert _facts(forked) == _facts(alone)
    assert forked[-1].recording.placeholder_secrets == found


def test_the_preview_takes_a_secret_list_in_its_own_order(
    tmp_path: Path, runs_here: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` finds the first run's unset secrets in another order: the same config, so the recording is taken, and
    lists them as the preview's `up` would (given them up front, in the first run's order)."""
    project = _project(
        tmp_path,
        """
        import pulumi
        config = pulumi.Config()
        names = ["zeta", "alpha"] if pulumi.runtime.is_dry_run() else ["alpha", "zeta"]
        for name in names:
            config.require_secret(name)
        """,
        THINGS,
    )
    alone, forked = _both_ways(monkeypatch, lambda: model_phases("dev", project_dir=project))
    assert runs_here == [True, False, True, True, True], "`up` ran in the fork the second time"
    assert forked[-1].recording.placeholder_secrets == ["standby:zeta", "standby:alpha"]
    assert _facts(forked) == _facts(alone)


def test_a_run_that_fails_in_the_fork_fails_in_the_preview_as_it_would_alone(
    tmp_path: Path, runs_here: list[bool], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    project = _project(
        tmp_path,
        """
        import pulumi
        """,
        THINGS,
        """
        if not pulumi.runtime.is_dry_run():
            raise ValueError("up cannot go on")
        """,
    )
    caplog.set_level("DEBUG", logger=standby_run.__name__)
    errors = []
    for start_after in (NEVER, 1):
        monkeypatch.setattr(standby_run, "START_AFTER", start_after)
        with pytest.raises(ProgramFailed) as failed:
            model_phases("dev", project_dir=project)
        errors.append((type(failed.value.error), str(failed.value), len(failed.value.recording.resources)))
    assert runs_here == [True, False] * 2, "the fork's failure was met again here"
    assert _reasons(caplog) == ["up runs here: up failed in the fork"]
    assert errors[0] == errors[1] and errors[0][:2] == (ValueError, "up cannot go on")


@pytest.mark.parametrize("stream", ["sys.stdout", "sys.stderr"])
def test_a_run_that_printed_in_the_fork_prints_from_the_preview_in_its_place(
    stream: str,
    tmp_path: Path,
    runs_here: list[bool],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`up` prints: the preview runs it itself, so what it prints comes through the preview's own streams (their
    encoding and errors) once, between what the previews print; the fork's capture is never shown."""
    project = _project(
        tmp_path,
        f"""
        import sys
        import pulumi
        print("preview" if pulumi.runtime.is_dry_run() else "up", file={stream})
        """,
        THINGS,
    )
    caplog.set_level("DEBUG", logger=standby_run.__name__)
    said = []
    for _ in _both_ways(monkeypatch, lambda: model_phases("dev", project_dir=project)):
        said.append(capfd.readouterr())
    assert runs_here == [True, False, True] * 2, "`up` ran here both times"
    assert _reasons(caplog) == ["up runs here: the fork's run printed"]
    out = "preview\nup\npreview\n"
    assert said[0] == said[1] == ((out, "") if stream == "sys.stdout" else ("", out))


def test_a_fork_that_does_not_answer_in_time_is_killed_and_up_runs_here(
    tmp_path: Path,
    runs_here: list[bool],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    project = _project(
        tmp_path,
        """
        import os
        import time
        import pulumi
        if not pulumi.runtime.is_dry_run() and os.getpid() != int(os.environ["STANDBY_TEST_PID"]):
            time.sleep(600)  # `up`, in the fork only
        """,
        THINGS,
    )
    monkeypatch.setenv("STANDBY_TEST_PID", str(os.getpid()))
    monkeypatch.setattr(standby_run, "START_AFTER", 1)
    monkeypatch.setattr(standby_run, "ANSWER_WITHIN", 1.0)
    caplog.set_level("DEBUG", logger=standby_run.__name__)
    before = descendants(os.getpid())
    assert len(model_phases("dev", project_dir=project)) == len(phases.SERVER_VERSIONS) * len(phases.ALL_PHASES)
    assert runs_here == [True, False, True]
    assert _reasons(caplog) == ["up runs here: the fork did not answer in time"]
    assert descendants(os.getpid()) <= before, "the fork was killed"


def test_a_preview_that_stops_while_the_fork_runs_up_stops_the_fork(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(
        tmp_path,
        """
        import time
        import pulumi
        """,
        THINGS,
        """
        if not pulumi.runtime.is_dry_run():
            time.sleep(600)  # `up`, in the fork
        """,
    )
    monkeypatch.setattr(standby_run, "START_AFTER", 1)

    def failing(*_: object) -> PhaseRecording:
        raise RuntimeError("modelling the first preview failed")

    monkeypatch.setattr(phases, "first_preview", failing)
    before = descendants(os.getpid())
    forks: set[int] = set()
    real = standby_run.StandbyRun.close

    def closing(self: standby_run.StandbyRun) -> None:
        forks.update(descendants(os.getpid()) - before)
        closed = threading.Thread(target=real, args=(self,), daemon=True)
        closed.start()
        closed.join(timeout=30)
        if closed.is_alive():
            pytest.fail("the fork was left to run `up`")

    monkeypatch.setattr(standby_run.StandbyRun, "close", closing)
    try:
        with pytest.raises(RuntimeError, match="modelling the first preview failed"):
            model_phases("dev", project_dir=project)
        assert forks, "the fork was running `up` when the preview stopped"
        assert not still_running(forks, 10.0), "and was stopped"
    finally:
        kill_left(descendants(os.getpid()) - before)


KILLED_WHILE_THE_FORK_RUNS_UP = """
    import sys
    from pathlib import Path
    from harness import analyzer, pack_driver, phases, standby_run
    standby_run.START_AFTER = 1
    phases.model_phases("dev", project_dir=Path(sys.argv[1]))
"""


@pytest.mark.slow  # a program run in a subprocess
def test_a_preview_killed_outright_takes_the_fork_running_up_with_it(tmp_path: Path) -> None:
    """Its pipe to the packs' driver among its descriptors, a fork left running would keep the packs alive."""
    marker = tmp_path / "fork"
    (tmp_path / "project").mkdir()
    project = _project(
        tmp_path / "project",
        """
        import os
        import time
        from pathlib import Path
        import pulumi
        """,
        THINGS,
        f"""
        if not pulumi.runtime.is_dry_run():
            Path({str(marker)!r}).write_text(str(os.getpid()))
            time.sleep(600)  # `up`, in the fork
        """,
    )
    preview = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_WHILE_THE_FORK_RUNS_UP), str(project)], cwd=REPO_ROOT
    )
    fork = 0
    try:
        deadline = time.monotonic() + 120
        while not (marker.is_file() and marker.read_text()):
            assert preview.poll() is None and time.monotonic() < deadline, "the fork ran `up`"
            time.sleep(0.05)
        fork = int(marker.read_text())
        assert fork in descendants(preview.pid), "the fork runs `up`"
        preview.kill()
        preview.wait(timeout=60)
        assert not still_running({fork}, 10.0), "the fork died with the preview"
    finally:
        kill_left([preview.pid, *([fork] if fork else [])])
        preview.wait(timeout=60)


def test_a_process_that_talked_grpc_runs_up_here(runs_here: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analyzer, "talked_grpc", lambda: True)
    monkeypatch.setattr(standby_run, "START_AFTER", 1)

    def forbidden() -> int:
        raise AssertionError("forked after gRPC: grpcio does not support it")

    monkeypatch.setattr(standby_run.os, "fork", forbidden)
    model_phases("staging", config_overrides=pinned("staging"))
    assert runs_here == [True, False, True]


def test_no_fork_to_be_had_runs_up_here(runs_here: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # fork(2) at RLIMIT_NPROC

    monkeypatch.setattr(standby_run.os, "fork", refused)
    monkeypatch.setattr(standby_run, "START_AFTER", 1)
    views = model_phases("staging", config_overrides=pinned("staging"))  # the loops of a first run open their pipes
    pipes_before = _pipes()
    views = model_phases("staging", config_overrides=pinned("staging"))
    assert len(views) == len(phases.SERVER_VERSIONS) * len(phases.ALL_PHASES)
    assert runs_here == [True, False, True] * 2
    assert _pipes() <= pipes_before, "its pipes were closed"


def _pipes() -> set[str]:
    """The pipes this process holds open, by inode."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed meanwhile
            if (target := os.readlink(f"/proc/self/fd/{fd}")).startswith("pipe:"):
                found.add(target)
    return found


def test_a_fork_killed_before_it_ran_leaves_up_to_the_preview(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = tmp_path / "ran"
    monkeypatch.setattr(standby_run, "START_AFTER", 1)
    before = descendants(os.getpid())
    with standby_run.StandbyRun(lambda: ran.write_text("ran")) as standby:  # type: ignore[arg-type,return-value]
        (fork,) = descendants(os.getpid()) - before
        os.kill(fork, signal.SIGKILL)
        assert not still_running({fork}, 10.0)
        standby.registered()  # the first run goes on: telling a dead fork to start fails nothing
        assert standby.result(()) is None
    assert not ran.exists() and descendants(os.getpid()) <= before
