"""Wall time of the offline preview and of the policy pack, against the cost of merely importing the SDK classes.

`make bench` (or `python bench/preview_bench.py [--repeat N] [--check]`) measures, each as the median of N runs:

- baseline: a fresh process that only imports the SDK classes the staging program uses (`pulumi`,
  `pulumi_kubernetes.apps.v1.Deployment`, ... as its resource types name them);
- the whole offline preview of staging and of prod, every phase of the offline engine, policies included
  (`python -m harness.preview STACK --quiet`, a fresh process) - goal for staging: within 1.5x the baseline;
- the same for staging with 50, 100 and 200 app workloads (`--set workloads=...`) - goal at 200: at most 3 s;
- policy evaluation alone: one booted pack analyzing the three phases (Analyze of every resource and AnalyzeStack,
  over gRPC as the engine calls it) at 50, 100 and 200 workloads, per resource and phase - goal: at most 1 ms at
  200 workloads, and linear (per-resource time at 200 within 1.25x that at 50);
- for `shipsafe_policies/sdk_speedup.py` to earn its keep: the same policy evaluation by a copy of the pack that
  does not install it;
- the floors the goals sit on, what the Pulumi SDKs take before any of our code: the program run for the three
  phases by the SDK with a monitor that only answers (nothing recorded or modelled, imports excluded), and the
  policy evaluation of a pack with as many policies as ours that do nothing (pulumi-policy's own request handling).

With --check it exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import ast
import gc
import importlib
import inspect
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from pulumi.runtime.proto import resource_pb2
from pulumi_policy import StackValidationPolicy

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script: make the harness importable

from harness import runtime  # noqa: E402
from harness.analyzer import POLICY_DIR, PolicyPackProcess, load_policy_config  # noqa: E402
from harness.phases import PhaseRecording, model_phases  # noqa: E402
from harness.policy_link import pack_registry  # noqa: E402
from harness.runtime import read_stack_config  # noqa: E402

CONFIG = POLICY_DIR / "config" / "staging.json"
SIZES = (50, 100, 200)
PREVIEW_GOAL_SECONDS = 3.0
BASELINE_FACTOR = 1.5
POLICY_GOAL_MS = 1.0
LINEAR_FACTOR = 1.25
SPEEDUP_INSTALL = "convert_requests_once()"
"""The line of the pack's `__main__.py` that installs the shared conversion (dropped from the comparison copy)."""


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run_python(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=REPO_ROOT, check=True, capture_output=True, timeout=600)


def many_workloads(count: int) -> dict[str, Any]:
    """`count` app workloads of one replica each (200 at two replicas would need more Postgres connections than
    `postgres.maxConnections` may allow)."""
    return {
        f"w{index:03d}": {"replicas": 1, "expose": index % 5 == 0, "command": ["python", "-m", "notes_app", "worker"]}
        for index in range(count)
    }


def overrides(count: int) -> dict[str, Any]:
    """Config overrides for `count` workloads, with Postgres connections for all their pods."""
    postgres = dict(read_stack_config("staging")[1]["shipsafe:postgres"], maxConnections=5000)
    return {"shipsafe:workloads": many_workloads(count), "shipsafe:postgres": postgres}


def set_arguments(count: int) -> list[str]:
    workloads = json.dumps(many_workloads(count))
    return ["--set", f"workloads={workloads}", "--set", "postgres.maxConnections=5000"]


SDK_PREFIX = "pulumi"
"""The Pulumi SDKs: `pulumi`, `pulumi_kubernetes`, `pulumi_docker`, `pulumi_random`, ..."""


def _is_sdk(module: str) -> bool:
    return module.split(".")[0].startswith(SDK_PREFIX)


def program_modules(project_dir: Path = REPO_ROOT) -> list[Path]:
    """The program's own source files: `__main__.py` and every project module it imports, transitively."""
    found: list[Path] = []
    pending = [project_dir / "__main__.py"]
    while pending:
        path = pending.pop()
        if path in found:
            continue
        found.append(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                for candidate in (project_dir / f"{name.replace('.', '/')}.py", project_dir / name / "__init__.py"):
                    if candidate.is_file():
                        pending.append(candidate)
    return sorted(found)


def _dotted(node: ast.expr) -> list[str] | None:
    """`k8s.apps.v1.Deployment` as its names; None for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return [node.id, *parts] if isinstance(node, ast.Name) else None


def _resolved_class(path: list[str]) -> str | None:
    """The longest prefix of a dotted SDK path that names a class (the SDKs load submodules lazily on access)."""
    try:
        found: Any = importlib.import_module(path[0])
    except ImportError:
        return None
    best = None
    for index, name in enumerate(path[1:], start=1):
        found = getattr(found, name, None)
        if found is None:
            break
        if inspect.isclass(found):
            best = ".".join(path[: index + 1])
    return best


def sdk_classes(project_dir: Path = REPO_ROOT) -> list[str]:
    """Every SDK class the program's source names, read from its imports and uses (`import pulumi_kubernetes as
    k8s` ... `k8s.apps.v1.Deployment`, `from pulumi_docker import DockerBuildArgs`), not from what a run
    registered: the Args classes and those of resources a stack may not create count too."""
    classes: set[str] = set()
    for path in program_modules(project_dir):
        tree = ast.parse(path.read_text(), str(path))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases.update({(a.asname or a.name.split(".")[0]): a.name for a in node.names if _is_sdk(a.name)})
            elif isinstance(node, ast.ImportFrom) and node.module and _is_sdk(node.module) and not node.level:
                aliases.update({(a.asname or a.name): f"{node.module}.{a.name}" for a in node.names})
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute | ast.Name) and not isinstance(getattr(node, "ctx", None), ast.Store):
                parts = _dotted(node)
                if parts and parts[0] in aliases:
                    found = _resolved_class([*aliases[parts[0]].split("."), *parts[1:]])
                    if found:
                        classes.add(found)
    return sorted(classes)


def baseline_program(project_dir: Path = REPO_ROOT) -> str:
    """Python that imports every SDK class the program names (`sdk_classes`)."""
    classes = sdk_classes(project_dir)
    packages = sorted({"pulumi", *(c.split(".")[0] for c in classes)})
    return "\n".join([f"import {p}" for p in packages] + classes)


@dataclass(frozen=True)
class PolicyTiming:
    resources: int
    """Resources analyzed over all phases."""
    seconds: float
    last_phase_seconds: float
    """The last phase's own analysis (median over the runs, as `seconds` is)."""

    @property
    def ms_per_resource(self) -> float:
        return 1000 * self.seconds / self.resources


@contextmanager
def pack_without_speedup() -> Iterator[Path]:
    """A copy of the pack whose `__main__.py` does not install `sdk_speedup` (its virtualenv made absolute)."""
    with tempfile.TemporaryDirectory() as directory:
        copy = Path(directory) / "policy"
        shutil.copytree(POLICY_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
        main = (copy / "__main__.py").read_text()
        if SPEEDUP_INSTALL not in main:
            raise SystemExit(f"{POLICY_DIR / '__main__.py'} no longer calls {SPEEDUP_INSTALL}; update the bench")
        (copy / "__main__.py").write_text(main.replace(SPEEDUP_INSTALL, "pass"))
        manifest = (copy / "PulumiPolicy.yaml").read_text()
        (copy / "PulumiPolicy.yaml").write_text(manifest.replace("../.venv", str(REPO_ROOT / ".venv")))
        yield copy


class AnsweringMonitor(runtime.RecordingMonitor):
    """Answers a Kubernetes registration with its own inputs and records nothing: what is left of a run is the SDK
    running the program (other providers keep their modelled state, which the program reads)."""

    def RegisterResource(self, request: Any) -> Any:
        if not request.type.startswith("kubernetes:"):
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=f"{request.name}-id", object=request.object)


def sdk_program_floor(config: Mapping[str, Any] | None, repeat: int) -> float:
    """Seconds the SDK alone takes to run the program for the three phases (a preview, an `up`, a preview), in
    this already warm process."""

    with mock.patch.object(runtime, "RecordingMonitor", AnsweringMonitor):
        # Warm-up: imports are the baseline's; a first run's one-off costs count in neither (a floor kept low).
        unset = runtime.run_stack("staging", config_overrides=config).placeholder_secrets

        def three_runs() -> None:  # as `model_phases` runs them: secrets found unset are filled up front
            for preview in (True, False, True):
                runtime.run_stack("staging", config_overrides=config, preview=preview, missing_secrets=unset)

        # As in the preview's process (`harness/preview.py`): no cyclic collections over this larger heap.
        gc.collect()
        gc.disable()
        try:
            return median_seconds(three_runs, repeat)
        finally:
            gc.enable()


@contextmanager
def pack_of_idle_policies() -> Iterator[Path]:
    """A pack with as many resource and stack policies as ours, each doing nothing, with `sdk_speedup` installed as
    in ours: pulumi-policy's own cost of a request."""
    policies = pack_registry().all_policies()
    stack_policies = sum(1 for p in policies if isinstance(p, StackValidationPolicy))
    with tempfile.TemporaryDirectory() as directory:
        pack = Path(directory) / "policy"
        shutil.copytree(POLICY_DIR, pack, ignore=shutil.ignore_patterns("__pycache__"))
        (pack / "__main__.py").write_text(
            "from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy\n"
            "from shipsafe_policies.sdk_speedup import convert_requests_once\n\n"
            "convert_requests_once()\n"
            "PolicyPack(name='idle', enforcement_level=EnforcementLevel.MANDATORY, policies=[\n"
            f"    *(ResourceValidationPolicy(name=f'r{{i}}', description='r', validate=lambda a, r: None)"
            f" for i in range({len(policies) - stack_policies})),\n"
            f"    *(StackValidationPolicy(name=f's{{i}}', description='s', validate=lambda a, r: None)"
            f" for i in range({stack_policies})),\n"
            "])\n"
        )
        manifest = (pack / "PulumiPolicy.yaml").read_text()
        (pack / "PulumiPolicy.yaml").write_text(manifest.replace("../.venv", str(REPO_ROOT / ".venv")))
        yield pack


def policy_config(pack_dir: Path) -> dict[str, dict[str, Any]]:
    """Staging's policy config; a copied pack reads the Dockerfiles of this project (`projectDir`)."""
    config = load_policy_config(CONFIG)
    if pack_dir != POLICY_DIR:
        registry = importlib.import_module("harness.policy_link").pack_registry()
        for rule in registry.all_rules():
            if "projectDir" in rule.settings:
                config[rule.name] = {**config.get(rule.name, {}), "projectDir": str(REPO_ROOT)}
    return config


def policy_timing(
    phases: list[PhaseRecording], repeat: int, pack_dir: Path = POLICY_DIR, *, configured: bool = True
) -> PolicyTiming:
    with PolicyPackProcess(pack_dir, stack="staging") as pack:
        pack.configure(policy_config(pack_dir) if configured else {})

        last_phase: list[float] = []

        def analyze_all() -> None:
            for phase in phases:
                started = time.perf_counter()
                if pack.analyze(phase.recording).mandatory_violations:
                    raise SystemExit(f"the benchmark stack violates mandatory policies in {phase.phase}")
            last_phase.append(time.perf_counter() - started)

        seconds = median_seconds(analyze_all, repeat)
        return PolicyTiming(sum(len(p.recording.resources) for p in phases), seconds, statistics.median(last_phase))


@dataclass(frozen=True)
class Row:
    name: str
    resources: object
    value: str
    goal: str = "-"
    met: bool = True
    note: str = ""
    """Printed in place of a goal (a floor has none)."""


def print_rows(rows: list[Row], repeat: int) -> None:
    print(f"{'measurement':<66}{'resources':>10}{'median':>12}  goal")
    for row in rows:
        verdict = "" if row.goal == "-" else ("  met" if row.met else "  MISSED")
        goal = row.note or f"{row.goal}{verdict}"
        print(f"{row.name:<66}{row.resources!s:>10}{row.value:>12}  {goal}")
    print(f"(median of {repeat} runs)")


def measure(repeat: int) -> list[Row]:
    staging = model_phases("staging")
    baseline = median_seconds(lambda: run_python("-c", baseline_program()), repeat)
    rows = [Row("import the SDK classes the program uses (baseline)", "-", f"{baseline:.2f} s")]
    for stack in ("staging", "prod"):
        seconds = median_seconds(lambda: run_python("-m", "harness.preview", stack, "--quiet"), repeat)  # noqa: B023
        goal, met, bound = "-", True, BASELINE_FACTOR * baseline
        if stack == "staging":
            goal, met = f"<= {bound:.2f} s ({BASELINE_FACTOR}x)", seconds <= bound
        rows.append(Row(f"offline preview, all phases, {stack}", "-", f"{seconds:.2f} s", goal, met))
    with pack_of_idle_policies() as idle_pack:
        idle = policy_timing(staging, repeat, idle_pack, configured=False)
    floor = sdk_program_floor(None, repeat) + idle.last_phase_seconds
    rows.append(floor_row("staging", floor, baseline, BASELINE_FACTOR * baseline))
    timings: dict[int, PolicyTiming] = {}
    for size in SIZES:
        phases = model_phases("staging", config_overrides=overrides(size))
        seconds = median_seconds(
            lambda: run_python("-m", "harness.preview", "staging", "--quiet", *set_arguments(size)),  # noqa: B023
            repeat,
        )
        goal, met, goal_bound = "-", True, None
        if size == SIZES[-1]:
            goal_bound = PREVIEW_GOAL_SECONDS
            goal, met = f"<= {goal_bound:.2f} s", seconds <= goal_bound
        per_phase = len(phases[0].recording.resources)
        rows.append(Row(f"offline preview, all phases, {size} workloads", per_phase, f"{seconds:.2f} s", goal, met))
        timings[size] = policy_timing(phases, repeat)
        with pack_without_speedup() as plain_pack:
            plain = policy_timing(phases, repeat, plain_pack)
        with pack_of_idle_policies() as idle_pack:
            idle = policy_timing(phases, repeat, idle_pack, configured=False)
        floor = sdk_program_floor(overrides(size), repeat) + idle.last_phase_seconds
        rows.append(floor_row(f"{size} workloads", floor, baseline, goal_bound))
        rows.append(policy_row(size, timings))
        rows.append(Row(f"  same, pack without sdk_speedup, {size} workloads", plain.resources, _ms(plain), "-"))
        rows.append(Row(f"  floor: as many policies doing nothing, {size} workloads", idle.resources, _ms(idle), "-"))
    return rows


def floor_row(what: str, floor: float, baseline: float, bound: float | None) -> Row:
    """`floor`: what a preview takes beyond the baseline before any code of ours runs, the SDK running the program
    for the three phases and pulumi-policy analyzing the last phase (no program run overlaps it) with idle policies.
    A goal below the baseline plus the floor cannot be met by the harness or the pack, only by the SDKs."""
    total = baseline + floor
    above = bound is not None and total > bound
    return Row(
        f"  floor: SDKs alone (3 program runs, last analysis), {what}",
        "-",
        f"{floor:.2f} s",
        note=f"baseline + floor = {total:.2f} s ({total / baseline:.2f}x)" + (", above the goal" if above else ""),
    )


def _ms(timing: PolicyTiming) -> str:
    return f"{timing.ms_per_resource:.2f} ms"


def policy_row(size: int, timings: Mapping[int, PolicyTiming]) -> Row:
    timing = timings[size]
    name = f"  policy evaluation per resource and phase, {size} workloads"
    if size != SIZES[-1]:
        return Row(name, timing.resources, _ms(timing))
    linear = timing.ms_per_resource <= LINEAR_FACTOR * timings[SIZES[0]].ms_per_resource
    goal = f"<= {POLICY_GOAL_MS:.2f} ms, <= {LINEAR_FACTOR}x the {SIZES[0]}-workload figure"
    return Row(name, timing.resources, _ms(timing), goal, timing.ms_per_resource <= POLICY_GOAL_MS and linear)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    rows = measure(args.repeat)
    print_rows(rows, args.repeat)
    return 1 if args.check and not all(row.met for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
