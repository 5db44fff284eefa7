"""The pack side by side with a peer tool: `python -m tests.support.peer_check [--checkov PATH] [--out DIR]`.

Renders every stack (`Pulumi.<stack>.yaml`, discovered) and every violating case of the bad-variant catalogue
(`tests/policy/test_bad_variants.py`), runs checkov (pinned and hash-locked in requirements-peer.txt, so its check
set is fixed) on those manifests, and runs the pack on the same recordings. Every checkov finding must be either
made by the pack (a rule the decisions table names reports the same object) or covered by a written decision in
`docs/peer-decisions.json`, which docs/policies.md shows; anything else is an undocumented peer finding and the
command exits 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.peer_decisions import DECISIONS, load_decisions
from harness.analyzer import POLICY_DIR, AnalysisReport, PolicyPackProcess, load_policy_config
from harness.manifests import documents_in_apply_order, is_kubernetes
from harness.recording import Recording
from harness.runtime import run_stack
from harness.stack_config import REPO_ROOT, stack_names

CHECKOV = REPO_ROOT / ".venv-peer" / "bin" / "checkov"
EXIT_UNDOCUMENTED = 1
STACK_SET = "stack-"
"""Prefix of a whole stack's manifest set; the others are named after their catalogue case."""


@dataclass(frozen=True)
class Finding:
    manifests: str
    """The manifest set: `stack-<name>` (STACK_SET) or a catalogue case id."""
    check: str
    resource: str
    """checkov's `Kind.namespace.name`."""


def manifest_sets() -> dict[str, Recording]:
    """Each stack as `up` would apply it, and each violating catalogue case whose fault is in its manifests."""
    from tests.policy.test_bad_variants import CASES  # the catalogue is the tests' own

    stacks = {name: run_stack(name) for name in stack_names(REPO_ROOT)}
    sets = {f"{STACK_SET}{name}": recording for name, recording in stacks.items()}
    for case in CASES:
        if case.dockerfile is None and case.stack in stacks:  # Dockerfile faults have no manifest to show
            sets[case.id] = case.fault(stacks[case.stack])
    return sets


def object_id(resource: Any) -> str:
    """checkov's id of an object: `Kind.namespace.name` (`default` for cluster-scoped ones)."""
    metadata = resource.inputs.get("metadata") or {}
    return f"{resource.inputs.get('kind')}.{metadata.get('namespace') or 'default'}.{metadata.get('name')}"


def _changed_documents(sets: Mapping[str, Recording]) -> dict[str, list[dict[str, Any]]]:
    """Each stack's objects in full; of each catalogue case only the objects its fault changed or added (checkov's
    Kubernetes checks judge one object at a time, so the rest would repeat the stack's findings)."""
    documents = {name: documents_in_apply_order(recording) for name, recording in sets.items()}
    stacks = {recording.stack: documents[name] for name, recording in sets.items() if name.startswith(STACK_SET)}
    return {
        name: found if name.startswith(STACK_SET) else [d for d in found if d not in stacks[sets[name].stack]]
        for name, found in documents.items()
    }


def run_checkov(sets: Mapping[str, Recording], directory: Path, checkov: Path) -> list[Finding]:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.yaml"):
        old.unlink()
    for name, documents in _changed_documents(sets).items():
        if documents:
            (directory / f"{name}.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    command = [str(checkov), "-d", str(directory), "--framework", "kubernetes", "--quiet", "--compact"]
    command += ["--output", "json", "--skip-download"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):  # 1: some check failed
        raise SystemExit(f"checkov failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    parsed = json.loads(result.stdout)
    reports = parsed if isinstance(parsed, list) else [parsed]
    return [
        Finding(Path(check["file_path"]).stem, check["check_id"], check["resource"])
        for report in reports
        for check in report["results"]["failed_checks"]
    ]


def pack_findings(sets: Mapping[str, Recording]) -> dict[str, set[tuple[str, str]]]:
    """Per manifest set, (policy, checkov object id) of every violation the pack reports, at any level."""
    found: dict[str, set[tuple[str, str]]] = {}
    with PolicyPackProcess() as pack:
        for name, recording in sets.items():
            pack.configure(load_policy_config(POLICY_DIR / "config" / f"{recording.stack}.json"))
            report: AnalysisReport = pack.analyze(recording)
            ids = {r.name: object_id(r) for r in recording if is_kubernetes(r)}
            found[name] = {(v.policy, ids.get(v.resource or "", "")) for v in report.violations}
    return found


def verdicts(
    findings: Iterable[Finding], pack: Mapping[str, set[tuple[str, str]]], checks: Mapping[str, Any]
) -> dict[Finding, str]:
    """`made by <rule>`, `decision`, or `undocumented` for every peer finding."""
    result = {}
    for finding in findings:
        entry = checks.get(finding.check) or {}
        made = [rule for rule in entry.get("rules", []) if (rule, finding.resource) in pack.get(finding.manifests, ())]
        if made:
            result[finding] = f"made by {made[0]}"
        else:
            result[finding] = "decision" if entry.get("decision") else "undocumented"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.peer_check", description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", type=Path, default=CHECKOV, help="the pinned checkov (make peer-check)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "peer", help="where manifests are written")
    args = parser.parse_args(argv)
    decisions = load_decisions()
    sets = manifest_sets()
    findings = run_checkov(sets, args.out, args.checkov)
    judged = verdicts(findings, pack_findings(sets), decisions["checks"])
    by_check: dict[str, dict[str, int]] = {}
    for finding, verdict in judged.items():
        counts = by_check.setdefault(finding.check, {})
        kind = verdict.split(" ")[0] if verdict != "decision" else verdict
        counts[kind] = counts.get(kind, 0) + 1
    stacks = ", ".join(stack_names(REPO_ROOT))
    cases = len(sets) - len(stack_names(REPO_ROOT))
    print(f"{decisions['tool']}: {len(findings)} findings on the stacks ({stacks}) and {cases} catalogue cases")
    for check, counts in sorted(by_check.items()):
        shown = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        print(f"  {check}: {shown}")
    undocumented = sorted((f for f, v in judged.items() if v == "undocumented"), key=lambda f: (f.check, f.manifests))
    for finding in undocumented:
        print(f"UNDOCUMENTED {finding.check} on {finding.resource} in {finding.manifests}", file=sys.stderr)
    if undocumented:
        print(f"{len(undocumented)} peer findings the pack neither makes nor documents ({DECISIONS.name})")
        return EXIT_UNDOCUMENTED
    print("Every peer finding is made by the pack or documented.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
