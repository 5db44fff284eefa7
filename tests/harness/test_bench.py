"""The bench's floors (`bench/preview_bench.py`): what the Pulumi SDKs alone take, against which its goals are read.
A floor that measured something else would make a missed goal look like the SDK's fault."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from unittest import mock

import pytest
from pulumi_policy import StackValidationPolicy

from deploy.policy_link import pack_registry
from harness import runtime
from harness.analyzer import PolicyPackProcess
from harness.phases import PhaseRecording
from harness.runtime import REPO_ROOT


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("preview_bench", REPO_ROOT / "bench" / "preview_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_idle_pack_has_our_policies_count_and_finds_nothing(
    bench: ModuleType, phase_recordings: dict[tuple[str, object], PhaseRecording]
) -> None:
    ours = pack_registry().all_policies()
    with bench.pack_of_idle_policies() as pack_dir, PolicyPackProcess(pack_dir, stack="staging") as pack:
        kinds = [p.kind for p in pack.policies]
        assert (kinds.count("resource"), kinds.count("stack")) == (
            sum(not isinstance(p, StackValidationPolicy) for p in ours),
            sum(isinstance(p, StackValidationPolicy) for p in ours),
        )
        pack.configure({})
        for (stack, _), phase in phase_recordings.items():
            if stack == "staging":
                report = pack.analyze(phase.recording)
                assert report.resources == len(phase.recording.resources)
                assert not report.violations and not report.skipped


def test_the_floor_runs_the_program_but_records_no_kubernetes_object(bench: ModuleType) -> None:
    with mock.patch.object(runtime, "RecordingMonitor", bench.AnsweringMonitor):
        recording = runtime.run_stack("staging")
    assert recording.resources, "the image build and the passwords keep their modelled state"
    assert not [r for r in recording if r.type.startswith("kubernetes:")]
    assert "deployTimeline" in recording.stack_outputs, "the program ran to its end"
