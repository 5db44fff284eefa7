"""`up`'s run in a fork beside the first preview's (`harness.standby_run`): the phases it gives are the ones the
preview's own runs give, and whatever goes wrong in the fork, the preview runs `up` itself."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi.output import Unknown

from harness import phases, standby_run
from harness.phases import PhaseRecording, model_phases
from harness.recording import Recording
from harness.runtime import ProgramFailed
from tests.conftest import STACKS, pinned
from tests.harness.process_tree import descendants, kill_left, still_running

pytestmark = pytest.mark.skipif(not standby_run.AVAILABLE, reason="the fork is made on Linux only")

NEVER = 10**9
"""A `START_AFTER` no program reaches: the runs one after the other, in this process."""


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
    assert capfd.readouterr() == ("", ""), "the program prints nothing, so neither did the fork"


def test_a_program_below_the_threshold_runs_up_here_and_the_fork_leaves(runs_here: list[bool]) -> None:
    before = descendants(os.getpid())
    views = model_phases("staging", config_overrides=pinned("staging"))
    assert len(views[0].recording.resources) < standby_run.START_AFTER
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


def test_secrets_the_fork_found_otherwise_send_up_back_to_the_preview(
    tmp_path: Path, runs_here: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` requires a secret the preview does not: the fork's config was not the one the preview's `up` gets (the
    first run's unset secrets filled up front), so its recording is not taken."""
    project = _project(
        tmp_path,
        """
        import pulumi
        config = pulumi.Config()
        config.require_secret("first")
        if not pulumi.runtime.is_dry_run():
            config.require_secret("second")
        """,
        THINGS,
    )
    alone, forked = _both_ways(monkeypatch, lambda: model_phases("dev", project_dir=project))
    assert runs_here == [True, False, True] * 2, "`up` ran here both times"
    assert _facts(forked) == _facts(alone)
    assert forked[-1].recording.placeholder_secrets == ["standby:first", "standby:second"]


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
    tmp_path: Path, runs_here: list[bool], monkeypatch: pytest.MonkeyPatch
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
    errors = []
    for start_after in (NEVER, 1):
        monkeypatch.setattr(standby_run, "START_AFTER", start_after)
        with pytest.raises(ProgramFailed) as failed:
            model_phases("dev", project_dir=project)
        errors.append((type(failed.value.error), str(failed.value), len(failed.value.recording.resources)))
    assert runs_here == [True, False] * 2, "the fork's failure was met again here"
    assert errors[0] == errors[1] and errors[0][:2] == (ValueError, "up cannot go on")


def test_what_the_forks_run_printed_is_printed_once_where_up_would_print_it(
    tmp_path: Path, runs_here: list[bool], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    project = _project(
        tmp_path,
        """
        import sys
        import pulumi
        print("preview" if pulumi.runtime.is_dry_run() else "up")
        if not pulumi.runtime.is_dry_run():
            print("up's warning", file=sys.stderr)
        """,
        THINGS,
    )
    said = []
    for _ in _both_ways(monkeypatch, lambda: model_phases("dev", project_dir=project)):
        said.append(capfd.readouterr())
    assert runs_here == [True, False, True, True, True]
    assert said[0] == said[1] and said[1].out == "preview\nup\npreview\n" and said[1].err == "up's warning\n"


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
            kill_left(forks)
            pytest.fail("the fork was left to run `up`")

    monkeypatch.setattr(standby_run.StandbyRun, "close", closing)
    with pytest.raises(RuntimeError, match="modelling the first preview failed"):
        model_phases("dev", project_dir=project)
    assert forks, "the fork was running `up` when the preview stopped"
    assert not still_running(forks, 10.0), "and was stopped"


def test_no_fork_to_be_had_runs_up_here(runs_here: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # fork(2) at RLIMIT_NPROC

    monkeypatch.setattr(standby_run.os, "fork", refused)
    monkeypatch.setattr(standby_run, "START_AFTER", 1)
    views = model_phases("staging", config_overrides=pinned("staging"))
    assert len(views) == len(phases.SERVER_VERSIONS) * len(phases.ALL_PHASES)
    assert runs_here == [True, False, True]


def test_a_fork_killed_before_it_ran_leaves_up_to_the_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(standby_run, "START_AFTER", 1)
    before = descendants(os.getpid())
    with standby_run.StandbyRun(lambda: pytest.fail("the fork was killed before it ran")) as standby:
        (fork,) = descendants(os.getpid()) - before
        os.kill(fork, signal.SIGKILL)
        assert not still_running({fork}, 10.0)
        standby.registered()  # the first run goes on: telling a dead fork to start fails nothing
        assert standby.result(()) is None
    assert descendants(os.getpid()) <= before
