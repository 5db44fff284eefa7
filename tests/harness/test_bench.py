"""The bench's floors (`bench/preview_bench.py`): what the Pulumi SDKs alone take, against which its goals are read.
A floor that measured something else would make a missed goal look like the SDK's fault."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from unittest import mock

import pytest
from pulumi_policy import StackValidationPolicy

from bench.sdk_floor import AnsweringMonitor
from deploy.policy_link import pack_registry
from harness import runtime
from harness.analyzer import PolicyPackProcess
from harness.apiserver import SERVER_VERSIONS
from harness.phases import ALL_PHASES, Phase, PhaseRecording
from harness.recording import Recording
from harness.stack_config import REPO_ROOT


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
    with mock.patch.object(runtime, "RecordingMonitor", AnsweringMonitor):
        recording = runtime.run_stack("staging")
    assert recording.resources, "the image build and the passwords keep their modelled state"
    assert not [r for r in recording if r.type.startswith("kubernetes:")]
    assert "deployTimeline" in recording.stack_outputs, "the program ran to its end"


def test_the_import_baseline_is_every_sdk_class_the_program_names(bench: ModuleType, tmp_path: Path) -> None:
    """Read from the source, so Args classes and a resource a stack does not create (the HPA) count too."""
    classes = bench.sdk_classes()
    for expected in (
        "pulumi_kubernetes.autoscaling.v2.HorizontalPodAutoscaler",
        "pulumi_docker.DockerBuildArgs",
        "pulumi_docker.RegistryArgs",
        "pulumi_random.RandomPassword",
        "pulumi.ComponentResource",
    ):
        assert expected in classes
    (tmp_path / "__main__.py").write_text("from lib.extra import make\nmake()\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "extra.py").write_text(
        "import pulumi_kubernetes as kube\nfrom pulumi_kubernetes.core.v1 import PodArgs\n"
        "def make():\n    return kube.core.v1.Pod('p', spec=PodArgs(containers=[])).metadata.apply(str)\n"
    )
    assert bench.sdk_classes(tmp_path) == ["pulumi_kubernetes.core.v1.Pod", "pulumi_kubernetes.core.v1.PodArgs"]


def test_the_baseline_program_loads_each_class_module(bench: ModuleType) -> None:
    probe = bench.baseline_program() + "\nimport sys\nprint(sorted(m for m in sys.modules if m.startswith('pulumi_')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "pulumi_kubernetes.autoscaling.v2.HorizontalPodAutoscaler" in loaded
    assert "pulumi_kubernetes.apps.v1.Deployment" in loaded


def test_the_baseline_covers_every_kind_the_stacks_register(
    bench: ModuleType, recordings: dict[str, Recording]
) -> None:
    classes = bench.sdk_classes()
    kinds = {c.rsplit(".", 1)[1] for c in classes}
    for recording in recordings.values():
        for resource in recording:
            package, module, kind = resource.type.split(":")
            if not resource.custom or package == "pulumi":
                continue
            group, _, version = module.partition("/")
            sdk = importlib.import_module(f"pulumi_{package}")
            has_class = hasattr(getattr(getattr(sdk, group.split(".")[0], None), version, None), kind) or hasattr(
                sdk, kind
            )
            # A kind the SDK has no class for (a CRD's) is created through its CustomResource.
            assert (kind if has_class else "CustomResource") in kinds, resource.type


def test_rounds_interleave_and_ratios_are_taken_round_by_round(bench: ModuleType) -> None:
    calls: list[str] = []
    seconds = iter([2.0, 1.0, 6.0, 2.0, 3.0, 3.0])  # per round: the measurement, then its floor

    def timed(name: str) -> Callable[[], float]:
        def action() -> float:
            calls.append(name)
            return next(seconds)

        return action

    rounds = bench.interleaved({"measured": timed("m"), "floor": timed("f")}, 3)
    assert calls == ["m", "f"] * 3
    assert rounds == {"measured": [2.0, 6.0, 3.0], "floor": [1.0, 2.0, 3.0]}
    # Ratios per round 2, 3, 1: their median, not the ratio of the medians (3 / 2).
    assert bench.paired_ratio(rounds["measured"], rounds["floor"]) == 2.0
    met = bench.goal_row("x", "-", "1 s", 1.5, bench.BASELINE_FACTOR, "baseline")
    missed = bench.goal_row("x", "-", "1 s", 1.51, bench.BASELINE_FACTOR, "baseline")
    assert (met.met, missed.met) == (True, False)
    assert missed.goal == "1.51x baseline (goal <= 1.5x)"


def test_the_policy_run_analyzes_each_phase_with_its_own_pack_and_reuse_starting_empty(
    bench: ModuleType, phase_recordings: dict[tuple[str, object], PhaseRecording]
) -> None:
    phases = [phase for (stack, _), phase in phase_recordings.items() if stack == "staging"]
    with bench.pack_of_idle_policies() as pack_dir:
        run = bench.PolicyRun(phases, pack_dir, configured=False)
        try:
            assert {dry_run: pack.dry_run for dry_run, pack in run.packs.items()} == {True: True, False: False}
            run.time()
            run.time()
            reuse = run.packs[True].reuse
            assert reuse is run.packs[False].reuse and reuse.asked > 0, "a fresh reuse per round, shared by both packs"
            timing = run.timing()
            assert timing.resources == sum(len(p.recording.resources) for p in phases)
            assert len(timing.samples) == len(timing.last_phase) == 2
            assert all(last < total for last, total in zip(timing.last_phase, timing.samples, strict=True))
        finally:
            run.close()


def test_the_last_phase_is_timed_over_every_api_servers_view_of_it(bench: ModuleType) -> None:
    """The floor of goal 3 holds the whole last phase: each of its views (one per API server) waits for the last
    program run, so none overlaps a run. Timing only the last view undercounted it once a phase had two views."""
    phases = [
        SimpleNamespace(phase=phase, recording=SimpleNamespace(preview=phase is not Phase.AFTER_UP))
        for phase in ALL_PHASES
        for _ in SERVER_VERSIONS
    ]
    last_views = [p for p in phases if p.phase is phases[-1].phase]
    assert len(last_views) == len(SERVER_VERSIONS) > 1
    now = [0.0]

    class Pack:
        reuse = None

        def analyze(self, recording: Recording) -> object:
            now[0] += 1.0  # each view takes a second
            return mock.Mock(mandatory_violations=[])

    run = object.__new__(bench.PolicyRun)
    run.phases, run.reuse_mode, run.samples, run.last_phase = phases, "on", [], []
    run.packs = {True: Pack(), False: Pack()}
    with mock.patch.object(bench.time, "perf_counter", lambda: now[0]), mock.patch.object(bench.gc, "collect"):
        run.time()
    assert (run.samples, run.last_phase) == ([len(phases)], [len(last_views)])


def test_the_sdk_floor_runs_the_program_as_a_fresh_process() -> None:
    """Goal 1's second floor: the SDK's three runs of the program, imports included, in a process of its own."""
    started = subprocess.run(
        [sys.executable, "-m", "bench.sdk_floor", "staging"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert started.returncode == 0, started.stderr


def test_the_measured_processes_read_our_modules_compiled(bench: ModuleType, tmp_path: Path) -> None:
    """The SDKs come compiled from pip; ours must too, or a shell with PYTHONDONTWRITEBYTECODE makes every measured
    preview compile the project again while the baseline compiles nothing."""
    (tmp_path / "package" / "sub").mkdir(parents=True)
    (tmp_path / "package" / "sub" / "module.py").write_text("VALUE = 1\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "skipped.py").write_text("VALUE = 2\n")
    bench.compile_project(tmp_path)
    assert Path(importlib.util.cache_from_source(str(tmp_path / "package" / "sub" / "module.py"))).is_file()
    assert not (tmp_path / ".hidden" / "__pycache__").exists(), "a .venv and .git are left alone"
