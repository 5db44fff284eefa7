"""The e2e workflow (kind + local registry) cannot run here: its shape is checked, and its stack and policy config
are checked by the offline model (linting and the workflow schema run in test_workflows.py over every workflow).
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from deploy.offline import preview
from deploy.offline.report import print_report
from tests.deploy.memory_stack import sha
from tests.deploy.test_workflows import REPO, load

E2E = load("e2e.yml")
JOB = E2E["jobs"]["e2e"]
RUNS = [str(step.get("run", "")) for step in JOB["steps"]]


def step_index(fragment: str) -> int:
    matches = [i for i, run in enumerate(RUNS) if fragment in run]
    assert len(matches) == 1, f"{fragment!r} in {len(matches)} steps"
    return matches[0]


def test_runs_nightly_and_by_hand_without_any_secret():
    assert set(E2E["on"]) == {"workflow_dispatch", "schedule"}
    assert "secrets." not in (REPO / ".github" / "workflows" / "e2e.yml").read_text()
    assert E2E["env"]["PULUMI_BACKEND_URL"].startswith("file://")
    assert E2E["env"]["PULUMI_CONFIG_PASSPHRASE"]


def test_the_pulumi_action_only_installs_the_cli():
    [install] = [step for step in JOB["steps"] if str(step.get("uses", "")).startswith("pulumi/actions@")]
    assert install["with"] == {"pulumi-version": "${{ env.PULUMI_VERSION }}"}


def test_the_cluster_meets_the_stacks_prerequisites():
    node = re.match(r"kindest/node:v(\d+)\.(\d+)", E2E["env"]["NODE_IMAGE"])
    assert node and (int(node.group(1)), int(node.group(2))) >= (1, 30)
    cluster = RUNS[step_index("kind create cluster")]
    assert "registry:2" in cluster and 'config_path = "/etc/containerd/certs.d"' in cluster
    assert "kube-prometheus-stack" in RUNS[step_index("helm install")]  # the PodMonitor CRD and a Prometheus


def test_the_rollout_runs_in_order_and_ends_with_destroy():
    order = [
        step_index("-m deploy init"),
        step_index('-m deploy up "$STACK" --image-ref "$IMAGE_REF"'),
        step_index("-m deploy smoke"),
        step_index("--expect-no-changes"),
        step_index('--image-ref "$FAULTY_REF" --verify'),
        step_index("pulumi destroy --yes"),
    ]
    assert order == sorted(order)
    no_op = RUNS[step_index("--expect-no-changes")]
    assert no_op.index("-m deploy up") < no_op.index("pulumi preview")  # the second up, then nothing to change
    assert "--policy-pack policy" in no_op
    destroy = RUNS[step_index("pulumi destroy --yes")]
    assert destroy.index("pulumi state unprotect --all") < destroy.index("pulumi destroy")


def test_no_background_process_outlives_its_step():
    """A port-forward or traffic loop left running would reach the later steps, the destroy among them."""
    for run in RUNS:
        started = len(re.findall(r"(?<!&)&\s*$", run, re.MULTILINE))
        if started:
            trap = re.search(r"trap '(kill [^']*)' EXIT", run)
            assert trap, f"no EXIT trap kills what this step starts:\n{run}"
            assert len(re.findall(r'"\$\w+"', trap.group(1))) == started, trap.group(1)
        assert "while true" not in run, run


def test_the_faulty_release_is_a_test_image_never_the_production_one():
    images = RUNS[step_index("--target faulty")]
    assert "docker build --target production" in images  # the release, exactly as deploy.yml builds it
    assert "--target faulty --build-arg FAULT_ERROR_RATE=" in images  # the Dockerfile's test-only target
    dockerfile = (REPO / "app" / "Dockerfile").read_text()
    production = dockerfile.split(" AS production", 1)[1].split("\nFROM ", 1)[0]
    instructions = [line for line in production.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in instructions if "fault" in line.lower()], "the production stage has no fault code"
    verify = RUNS[step_index("--verify")]
    # Only "verification failed and rolled back" passes, read from the tool's exit-code table.
    assert 'eval "$(.venv/bin/python -m deploy exit-codes --shell)"' in verify
    assert '[ "$status" -ne "$SHIPSAFE_EXIT_ROLLED_BACK" ]' in verify


# ── the e2e stack, derived from staging's files by the workflow, through the offline model ───────────────────


def _policy_config(tmp_path: Path) -> Path:
    if shutil.which("jq") is None:
        pytest.skip("needs jq (preinstalled on GitHub's runners)")
    command = RUNS[step_index("jq ")].split("jq ", 1)[1].split(">", 1)[0].replace("\\\n", " ")
    [program, source] = shlex.split(command)
    result = subprocess.run(["jq", program, str(REPO / source)], capture_output=True, text=True, check=True, timeout=30)
    target = tmp_path / "e2e.json"
    target.write_text(result.stdout)
    return target


def _stack_config_overrides() -> list[str]:
    """The workflow's `pulumi config set --path` lines applied to staging's config, as harness `--set` values."""
    config: dict[str, Any] = yaml.safe_load((REPO / "Pulumi.staging.yaml").read_text())["config"]
    env = {key: str(value) for key, value in E2E["env"].items()}
    changed = set()
    for line in RUNS[step_index("-m deploy init")].splitlines():
        if "--path" not in line:
            continue
        words = shlex.split(re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), m.group(0)), line))
        path, value = words[-2], words[-1]
        top, *rest = path.split(".")
        node = config[top]
        for part in rest[:-1]:
            node = node[part]
        node[rest[-1]] = int(value) if value.isdigit() else value
        changed.add(top)
    return [f"{key}={json.dumps(config[key])}" for key in sorted(changed)]


@pytest.mark.slow
def test_the_e2e_config_passes_settings_and_the_policy_pack_offline(tmp_path):
    image_ref = f"{E2E['env']['REGISTRY']}/shipsafe/notes:{sha(1)}@sha256:{'1' * 64}"
    overrides = _stack_config_overrides()
    assert any("localhost:5001" in override for override in overrides)
    release = ["imageSource=prebuilt", f"imageRef={image_ref}", f"gitSha={sha(1)}"]
    config = preview.parse_overrides("staging", [*overrides, *release])
    report = preview.offline_preview("staging", config, out=tmp_path, policy_config=_policy_config(tmp_path))
    console = Console(width=200, record=True, file=io.StringIO())
    print_report(report, console, console)
    output = console.export_text()
    assert report.passed, output
    assert "MANDATORY violations: 0" in output
    assert '"notes-e2e"' in output  # the namespace output: the e2e settings were really applied
