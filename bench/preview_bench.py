"""Wall time of the offline preview with all policies, against the cost of merely importing the Pulumi SDKs.

`make bench` (or `python bench/preview_bench.py [--repeat N] [--check]`) measures, each as the median of N runs:

- baseline: a fresh `python -c "import pulumi, pulumi_kubernetes"`;
- the whole offline preview of staging, policies included (`python -m harness.preview staging --quiet`, a fresh
  process) - goal: within 1.5x the baseline;
- the same for a staging stack with 50 app workloads (`--set workloads=...`) - goal: under 5 s;
- for context, the policy check alone (pack start, Configure, Analyze, AnalyzeStack) for both, in-process.

With --check it exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # run as a script: make the harness importable

from harness.analyzer import analyze  # noqa: E402
from harness.recording import Recording  # noqa: E402
from harness.runtime import run_stack  # noqa: E402

CONFIG = REPO_ROOT / "policy" / "config" / "staging.json"
WORKLOADS = 50


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run_python(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)


def many_workloads(count: int) -> dict[str, object]:
    return {
        f"w{index:02d}": {"replicas": 2, "expose": index % 5 == 0, "command": ["python", "-m", "notes_app", "worker"]}
        for index in range(count)
    }


def check_passes(recording: Recording) -> None:
    report = analyze(recording, CONFIG)
    if report.mandatory_violations:
        raise SystemExit(f"benchmark stack {recording.stack} violates mandatory policies")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)

    staging = run_stack("staging")
    large = run_stack("staging", config_overrides={"shipsafe:workloads": many_workloads(WORKLOADS)})
    baseline = median_seconds(lambda: run_python("-c", "import pulumi, pulumi_kubernetes"), args.repeat)
    preview = median_seconds(lambda: run_python("-m", "harness.preview", "staging", "--quiet"), args.repeat)
    large_workloads = f"workloads={json.dumps(many_workloads(WORKLOADS))}"
    preview_large = median_seconds(
        lambda: run_python("-m", "harness.preview", "staging", "--quiet", "--set", large_workloads), args.repeat
    )
    policy_staging = median_seconds(lambda: check_passes(staging), args.repeat)
    policy_large = median_seconds(lambda: check_passes(large), args.repeat)

    rows: list[tuple[str, object, float, str, bool]] = [
        ("import pulumi + pulumi_kubernetes (baseline)", "-", baseline, "-", True),
        (
            "offline preview + policies, staging",
            len(staging.resources),
            preview,
            f"<= {1.5 * baseline:.2f} s (1.5x)",
            preview <= 1.5 * baseline,
        ),
        (
            f"offline preview + policies, {WORKLOADS} workloads",
            len(large.resources),
            preview_large,
            "< 5.00 s",
            preview_large < 5.0,
        ),
        ("policy check alone, staging (context)", len(staging.resources), policy_staging, "-", True),
        (f"policy check alone, {WORKLOADS} workloads (context)", len(large.resources), policy_large, "-", True),
    ]
    print(f"{'measurement':<52}{'resources':>10}{'median':>10}  goal")
    for name, resources, seconds, goal, met in rows:
        verdict = "" if goal == "-" else ("  met" if met else "  MISSED")
        print(f"{name:<52}{resources:>10}{seconds:>9.2f}s  {goal}{verdict}")
    print(f"(median of {args.repeat} runs; staging preview / baseline = {preview / baseline:.1f}x)")
    return 1 if args.check and not all(met for *_, met in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
