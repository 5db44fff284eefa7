"""The packs driven from a fork of the preview's process (`harness/pack_driver.py`): the same reports as in
process, errors carried back, nothing left running. A fork is made only by a process that has not talked gRPC yet,
so the tests that drive real packs from a fork run in a process of their own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from deploy.offline import preview
from harness import analyzer, pack_driver
from harness.analyzer import AnalysisReport
from harness.phases import Phase, PhaseRecording
from harness.recording import Recording
from harness.stack_config import REPO_ROOT
from tests.conftest import STACKS

pytestmark = [
    pytest.mark.slow,  # the real pack, whole previews
    pytest.mark.skipif(not pack_driver.AVAILABLE, reason="the packs are driven from a fork on Linux only"),
]

WAIT_SECONDS = 300.0
"""Bound on each process a test starts (a broken driver would wait for ever for an answer)."""


def _python(script: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


PREVIEW = """
    import json, sys
    from pathlib import Path
    from deploy.offline import preview
    from deploy.offline.report import json_document
    from harness import pack_driver
    pack_driver.AVAILABLE = {forked}
    assert pack_driver.may_fork() is {forked}
    import os
    from tests.harness.process_tree import descendants
    report = json_document(preview.offline_preview({stack!r}, {{}}))
    print(json.dumps({{"report": report, "left": sorted(descendants(os.getpid()))}}))
"""


@pytest.mark.parametrize("stack", STACKS)
def test_a_forked_driver_gives_the_reports_of_an_in_process_one(stack: str) -> None:
    forked = json.loads(_python(PREVIEW.format(forked=True, stack=stack)))
    in_process = json.loads(_python(PREVIEW.format(forked=False, stack=stack)))
    assert forked["report"] == in_process["report"]
    assert len(forked["report"]["phases"]) == 6, "every view analyzed"
    assert any(phase["violations"] for phase in forked["report"]["phases"]), "the reports hold the policies' findings"
    assert forked["left"] == [], "the driver and its packs are gone with the preview"


def test_a_pack_that_failed_to_boot_fails_each_view_with_one_note(tmp_path: Path) -> None:
    """The boot's error is one object, raised again for each view: the fork's note (its traceback, which holds the
    notes before it) is added once, or each view's error would carry every earlier one, all of it pickled back."""
    refused = tmp_path / "policy.json"
    refused.write_text(json.dumps({"some-policy": {"foo": 1}}))  # properties but no level: the CLI stops here
    said = _python(
        f"""
        from pathlib import Path
        from harness import pack_driver
        from harness.phases import model_phases
        views = model_phases("staging")
        with pack_driver.booted_in_a_fork(Path({str(refused)!r}), project="shipsafe", stack="staging") as analyze:
            for view in views:
                try:
                    analyze(view.recording)
                except Exception as error:
                    print(len(error.__notes__), len("".join(error.__notes__)) < 5000)
        """
    )
    assert said == "1 True\n" * 6


def test_a_driver_that_died_fails_the_analysis_instead_of_waiting_for_ever() -> None:
    said = _python(
        """
        import os, signal
        from harness import pack_driver
        from harness.analyzer import POLICY_DIR, PolicyPackError
        from harness.phases import model_phases
        recording = model_phases("staging")[0].recording
        config = POLICY_DIR / "config" / "staging.json"
        from tests.harness.process_tree import packs_below, still_running
        with pack_driver.booted_in_a_fork(config, project=recording.project, stack="staging") as analyze:
            assert analyze(recording).resources == len(recording.resources)
            driver = analyze.__self__._pid
            packs = packs_below(driver)
            os.kill(driver, signal.SIGKILL)
            try:
                analyze(recording)
            except PolicyPackError as error:
                print(error)
            print(len(packs), still_running(packs, 120))
        """
    )
    assert said == "the process driving the policy packs stopped\n2 []\n", "failed, and its packs stopped"


def test_a_policy_config_refused_before_any_pack_starts_is_refused_as_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The config is refused while the child enters `booted_in_background`, before any gRPC: safe to fork here.
    refused = tmp_path / "policy.json"
    refused.write_text(json.dumps({"environments": ["platform/staging"]}))  # Pulumi ESC: not supported offline
    monkeypatch.setattr(pack_driver, "may_fork", lambda: True)
    forked = preview.offline_preview("staging", {}, out=tmp_path, policy_config=refused)
    monkeypatch.setattr(pack_driver, "may_fork", lambda: False)
    in_process = preview.offline_preview("staging", {}, out=tmp_path, policy_config=refused)
    assert forked.error is not None and forked.error == in_process.error
    assert forked.exit_code == in_process.exit_code


class _Unpicklable(Exception):
    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("not picklable")


class _TwoArgs(Exception):
    """Pickles (its args are the one message) but does not load again (`__init__` wants two)."""

    def __init__(self, key: str, value: str) -> None:
        super().__init__(f"{key}={value}")


def _raising(error: BaseException) -> Callable[..., AbstractContextManager[Callable[[Recording], AnalysisReport]]]:
    @contextmanager
    def booted(*_args: object, **_kwargs: object) -> Iterator[Callable[[Recording], AnalysisReport]]:
        def analyze(_recording: Recording) -> AnalysisReport:
            raise error

        yield analyze

    return booted


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_TwoArgs("key", "value"), "_TwoArgs: key=value"),
        (_Unpicklable("a policy crashed oddly"), "_Unpicklable: a policy crashed oddly"),
    ],
)
def test_an_error_that_does_not_travel_comes_back_as_its_traceback(
    error: BaseException,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
) -> None:
    monkeypatch.setattr(analyzer, "booted_in_background", _raising(error))  # no gRPC in the child: safe to fork here
    monkeypatch.setattr(pack_driver, "may_fork", lambda: True)
    recording = phase_recordings["staging", Phase.FIRST_PREVIEW].recording
    with (
        pack_driver.booted_in_a_fork(REPO_ROOT / "unused.json", project="shipsafe", stack="staging") as analyze,
        pytest.raises(RuntimeError, match=expected),
    ):
        analyze(recording)


def test_an_error_comes_back_with_where_it_was_raised(
    monkeypatch: pytest.MonkeyPatch, phase_recordings: dict[tuple[str, Phase], PhaseRecording]
) -> None:
    monkeypatch.setattr(analyzer, "booted_in_background", _raising(KeyError("missing-key")))
    monkeypatch.setattr(pack_driver, "may_fork", lambda: True)
    recording = phase_recordings["staging", Phase.FIRST_PREVIEW].recording
    with (
        pack_driver.booted_in_a_fork(REPO_ROOT / "unused.json", project="shipsafe", stack="staging") as analyze,
        pytest.raises(KeyError) as raised,
    ):
        analyze(recording)
    notes = "".join(getattr(raised.value, "__notes__", []))
    assert "in the process driving the policy packs" in notes and "in analyze" in notes
