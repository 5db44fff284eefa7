"""Wall time of the offline preview and of the policy pack, each against the floor it sits on, measured in the same run.

`make bench` (or `python bench/preview_bench.py [--repeat N] [--check]`) runs every measurement of a group once per
round, in turn, for N rounds (paired, interleaved: whatever else loads the machine loads both sides of a ratio
alike), and reports medians and the median over rounds of each ratio. The goals (docs/development.md):

- staging's whole offline preview, every phase and API server version, policies included
  (`python -m deploy preview staging --offline --quiet`, a fresh process): at most 1.5x the import baseline, a
  fresh process that only imports the SDK classes the program's source names (`sdk_classes`: read with ast, Args
  classes included);
- policy evaluation per resource and phase at 200 workloads (as the preview runs it: a preview pack and an update
  pack, identical requests answered once): at most 1.2x a pack of as many policies doing nothing (pulumi-policy's own
  cost), and linear (per-resource cost at 200 within 1.25x that at 50);
- the 200-workload preview: at most 1.3x its floor, the import baseline plus the SDK running the program for the
  three phases with a monitor that only answers plus the idle pack analyzing the last phase, every API server's
  view of it (no program run overlaps them).

Also reported: prod's preview, every figure with the reuse of identical analyses off (`--no-analysis-reuse`), and
the pack without `shipsafe_policies/sdk_speedup.py` (which earns its keep by the difference). With --check it exits 1
when a goal is missed.
"""

from __future__ import annotations

import argparse
import ast
import compileall
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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi_policy import StackValidationPolicy

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script: make the harness importable

from bench.sdk_floor import SdkFloor  # noqa: E402
from deploy.policy_link import pack_registry  # noqa: E402
from harness.analyzer import POLICY_DIR, AnalysisReuse, PolicyPackProcess, load_policy_config  # noqa: E402
from harness.phases import PhaseRecording, model_phases  # noqa: E402
from harness.runtime import read_stack_config  # noqa: E402

CONFIG = POLICY_DIR / "config" / "staging.json"
SIZES = (50, 100, 200)
BASELINE_FACTOR = 1.5
"""Goal: staging's preview, every phase, within this factor of the import baseline."""
IDLE_FACTOR = 1.2
"""Goal: policy evaluation at the largest size within this factor of the idle pack's."""
LINEAR_FACTOR = 1.25
"""Goal: per-resource policy cost at the largest size within this factor of the smallest's (linear)."""
FLOOR_FACTOR = 1.3
"""Goal: the largest preview within this factor of its floor (imports, the SDK's runs, the idle pack's last phase)."""
SPEEDUP_INSTALL = "convert_requests_once()"
"""The line of the pack's `__main__.py` that installs the shared conversion (dropped from the comparison copy)."""


OFFLINE_PREVIEW = ("-m", "deploy", "preview", "--offline")
"""`shipsafe preview --offline` in a fresh process (the stack and options follow)."""
SDK_FLOOR_PROCESS = ("-m", "bench.sdk_floor")
"""The SDK's three runs of the program in a fresh process (`bench/sdk_floor.py`; the stack follows)."""


def compile_project(root: Path = REPO_ROOT) -> None:
    """Bytecode for every module of the project, as a user's first run (or a wheel's install) leaves it: the SDKs'
    modules came compiled from pip, so without this a shell with PYTHONDONTWRITEBYTECODE set (as some CI images and
    sandboxes have) would make every measured preview compile ours again (about 0.1 s of staging's 1.2 s) while the
    import baseline compiles nothing."""
    for path in sorted(root.iterdir()):
        sources = path.is_dir() and not path.name.startswith(".") and any(path.rglob("*.py"))
        if sources and not compileall.compile_dir(path, quiet=1):
            raise SystemExit(f"{path}: a module does not compile")


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
    """Resources analyzed over all phases and API server versions."""
    samples: tuple[float, ...]
    """Seconds per round for every view."""
    last_phase: tuple[float, ...]
    """Seconds per round for the last phase, every API server's view of it: no program run overlaps them in a preview
    (each view of a phase is modelled once its run is done)."""

    @property
    def seconds(self) -> float:
        return statistics.median(self.samples)

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
            "from shipsafe_policies.sdk_speedup import collect_request_garbage_only, convert_requests_once\n\n"
            "convert_requests_once()\n"
            "collect_request_garbage_only()\n"
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
        registry = importlib.import_module("deploy.policy_link").pack_registry()
        for rule in registry.all_rules():
            if "projectDir" in rule.settings:
                config[rule.name] = {**config.get(rule.name, {}), "projectDir": str(REPO_ROOT)}
    return config


class PolicyRun:
    """A pack as the preview runs it: one process for the preview phases and one for the update's (after `up`),
    sharing the reuse of identical analyses, which starts empty at each `time()` as in a fresh preview."""

    def __init__(self, phases: list[PhaseRecording], pack_dir: Path, *, configured: bool, reuse: str = "on") -> None:
        self.phases, self.reuse_mode = phases, reuse
        self._stack = ExitStack()
        self.packs = {
            dry_run: self._stack.enter_context(PolicyPackProcess(pack_dir, stack="staging", dry_run=dry_run))
            for dry_run in (True, False)
        }
        for pack in self.packs.values():
            pack.configure(policy_config(pack_dir) if configured else {})
        self.samples: list[float] = []
        self.last_phase: list[float] = []

    def time(self) -> float:
        shared = AnalysisReuse(self.reuse_mode)
        for pack in self.packs.values():
            pack.reuse = shared
        gc.collect()
        # Where the last phase begins: each of its views (one per API server) waits for its last program run.
        first_of_last = next(i for i, phase in enumerate(self.phases) if phase.phase is self.phases[-1].phase)
        started = last = time.perf_counter()
        for index, phase in enumerate(self.phases):
            if index == first_of_last:
                last = time.perf_counter()
            if self.packs[phase.recording.preview].analyze(phase.recording).mandatory_violations:
                raise SystemExit(f"the benchmark stack violates mandatory policies in {phase.label}")
        ended = time.perf_counter()
        self.samples.append(ended - started)
        self.last_phase.append(ended - last)
        return self.samples[-1]

    def timing(self) -> PolicyTiming:
        resources = sum(len(p.recording.resources) for p in self.phases)
        return PolicyTiming(resources, tuple(self.samples), tuple(self.last_phase))

    def close(self) -> None:
        self._stack.close()


def interleaved(actions: Mapping[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Each action once per round, in turn, for `repeat` rounds: what loads the machine loads every action alike,
    and ratios are taken round by round (`paired_ratio`). An action may return its own seconds (a float)."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            started = time.perf_counter()
            result = action()
            samples[name].append(result if isinstance(result, float) else time.perf_counter() - started)
    return samples


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """The median over rounds of a measurement over its floor measured in the same round."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


@dataclass(frozen=True)
class Row:
    name: str
    resources: object
    value: str
    goal: str = "-"
    met: bool = True
    note: str = ""
    """Printed in place of a goal (a floor has none)."""


def print_rows(rows: Iterable[Row], repeat: int) -> list[Row]:
    """Prints each row as soon as it is measured (a long run shows what it has); returns them all."""
    printed = []
    print(f"{'measurement':<66}{'resources':>10}{'median':>12}  goal", flush=True)
    for row in rows:
        verdict = "" if row.goal == "-" else ("  met" if row.met else "  MISSED")
        goal = row.note or f"{row.goal}{verdict}"
        print(f"{row.name:<66}{row.resources!s:>10}{row.value:>12}  {goal}", flush=True)
        printed.append(row)
    print(f"(median of {repeat} rounds)")
    return printed


def _s(samples: Sequence[float]) -> str:
    return f"{statistics.median(samples):.2f} s"


def _ms(seconds: Sequence[float], resources: int) -> str:
    return f"{1000 * statistics.median(seconds) / resources:.2f} ms"


def goal_row(name: str, resources: object, value: str, ratio: float, bound: float, floor: str) -> Row:
    return Row(name, resources, value, f"{ratio:.2f}x {floor} (goal <= {bound}x)", ratio <= bound)


def _python(*arguments: str) -> Callable[[], object]:
    return lambda: run_python(*arguments)


def measure(repeat: int) -> Iterator[Row]:
    compile_project()
    baseline = _python("-c", baseline_program())
    # Goal 1: staging's whole preview (every phase) against the import baseline, round by round.
    first = interleaved(
        {
            "baseline": baseline,
            "sdk floor": _python(*SDK_FLOOR_PROCESS, "staging"),
            "staging": _python(*OFFLINE_PREVIEW, "staging", "--quiet"),
            "staging, reuse off": _python(*OFFLINE_PREVIEW, "staging", "--quiet", "--no-analysis-reuse"),
            "prod": _python(*OFFLINE_PREVIEW, "prod", "--quiet"),
        },
        repeat,
    )
    versus = {name: paired_ratio(samples, first["baseline"]) for name, samples in first.items()}
    rows = [
        Row("import the SDK classes the program names (baseline)", "-", _s(first["baseline"])),
        Row(
            "  the SDK's 3 runs of the program, fresh process, monitor answers",
            "-",
            _s(first["sdk floor"]),
            note=f"{versus['sdk floor']:.2f}x baseline: the SDK, the program's imports, the harness's runtime",
        ),
        goal_row(
            "offline preview, all phases, staging",
            "-",
            _s(first["staging"]),
            versus["staging"],
            BASELINE_FACTOR,
            "baseline",
        ),
        Row(
            "  same, --no-analysis-reuse",
            "-",
            _s(first["staging, reuse off"]),
            note=f"{versus['staging, reuse off']:.2f}x baseline",
        ),
        Row("offline preview, all phases, prod", "-", _s(first["prod"]), note=f"{versus['prod']:.2f}x baseline"),
    ]
    # Goals 2 and 3 at each size: our pack against the idle pack, the preview against the SDKs' floor.
    yield from rows
    per_resource: dict[int, float] = {}
    for size in SIZES:
        yield from _sized(size, repeat, baseline, per_resource)


def _sized(size: int, repeat: int, baseline: Callable[[], object], per_resource: dict[int, float]) -> list[Row]:
    phases = model_phases("staging", config_overrides=overrides(size))
    resources = len(phases[0].recording.resources)
    largest = size == SIZES[-1]
    with pack_of_idle_policies() as idle_dir, pack_without_speedup() as plain_dir:
        runs = {
            "ours": PolicyRun(phases, POLICY_DIR, configured=True),
            "idle": PolicyRun(phases, idle_dir, configured=False),
            "ours, reuse off": PolicyRun(phases, POLICY_DIR, configured=True, reuse="off"),
            **({"ours, no sdk_speedup": PolicyRun(phases, plain_dir, configured=True)} if largest else {}),
        }
        try:
            floor = SdkFloor(overrides(size)) if largest else None
            previews: dict[str, Callable[[], object]] = {}
            if floor is not None:
                previews = {
                    "preview": _python(*OFFLINE_PREVIEW, "staging", "--quiet", *set_arguments(size)),
                    "preview, reuse off": _python(
                        *OFFLINE_PREVIEW, "staging", "--quiet", "--no-analysis-reuse", *set_arguments(size)
                    ),
                    "baseline": baseline,
                    "sdk": floor.run,
                }
            rounds = interleaved({**{name: run.time for name, run in runs.items()}, **previews}, repeat)
        finally:
            for run in runs.values():
                run.close()
    ours, idle = runs["ours"].timing(), runs["idle"].timing()
    per_resource[size] = ours.ms_per_resource
    name = f"policy evaluation per resource and phase, {size} workloads"
    rows = [Row(name, ours.resources, f"{ours.ms_per_resource:.2f} ms")]
    if largest:
        ratio = paired_ratio(rounds["ours"], rounds["idle"])
        linear = per_resource[size] / per_resource[SIZES[0]]
        goal = (
            f"{ratio:.2f}x idle pack (goal <= {IDLE_FACTOR}x); {linear:.2f}x the {SIZES[0]}-workload figure "
            f"(goal <= {LINEAR_FACTOR}x)"
        )
        rows[0] = Row(name, ours.resources, rows[0].value, goal, ratio <= IDLE_FACTOR and linear <= LINEAR_FACTOR)
    rows.append(
        Row(
            f"  floor: as many policies doing nothing, {size} workloads",
            idle.resources,
            _ms(idle.samples, idle.resources),
        )
    )
    rows.append(
        Row(
            f"  ours, every request sent (reuse off), {size} workloads",
            ours.resources,
            _ms(rounds["ours, reuse off"], ours.resources),
        )
    )
    if not largest:
        return rows
    rows.append(
        Row(
            f"  ours without sdk_speedup, {size} workloads",
            ours.resources,
            _ms(rounds["ours, no sdk_speedup"], ours.resources),
        )
    )
    floors = [b + sdk + last for b, sdk, last in zip(rounds["baseline"], rounds["sdk"], idle.last_phase, strict=True)]
    rows.append(Row(f"floor: imports + the SDK's 3 runs + idle pack's last phase, {size} workloads", "-", _s(floors)))
    ratio = paired_ratio(rounds["preview"], floors)
    rows.append(
        goal_row(
            f"offline preview, all phases, {size} workloads",
            resources,
            _s(rounds["preview"]),
            ratio,
            FLOOR_FACTOR,
            "floor",
        )
    )
    rows.append(
        Row(
            "  same, --no-analysis-reuse",
            resources,
            _s(rounds["preview, reuse off"]),
            note=f"{paired_ratio(rounds['preview, reuse off'], floors):.2f}x floor",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    rows = print_rows(measure(args.repeat), args.repeat)
    return 1 if args.check and not all(row.met for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
