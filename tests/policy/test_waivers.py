"""Per-resource waivers and the CPU-limit decision, through the real pack over gRPC, as recorded and after `up`.

A waiver (`shipsafe.dev/waive.<policy>: "<reason>"`) silences one rule on one resource only, and every preview
reports it in its own section; a waiver without a reason waives nothing and is itself a mandatory violation, and so is
a waiver of a rule of the platform floor, which it does not waive.
"""

from __future__ import annotations

import pytest

from harness.analyzer import AnalysisReport, PolicyPackProcess, format_report, load_policy_config
from harness.recording import Recording
from tests.conftest import STACKS
from tests.policy.conftest import CONFIG_DIR, Analyze
from tests.policy.stack_edits import at, chain, edit
from tests.policy.test_bad_variants import PHASES, WAIVE, WEB, WORKER, in_phase, with_annotation

ROOT_FS = "hardening-read-only-root-fs"
REASON = "vendor agent writes /opt/agent until it ships a read-only mode; ticket SEC-12"
WRITABLE = at("container.securityContext.readOnlyRootFilesystem", False)


def _found(report: AnalysisReport, policy: str) -> set[tuple[str, str]]:
    return {(v.level, v.resource) for v in report.violations if v.policy == policy}


@pytest.mark.parametrize("phase", PHASES)
def test_a_waiver_spares_only_its_resource_and_is_reported_in_its_own_section(
    phase: str, compliant: dict[str, Recording], analyze: Analyze
) -> None:
    fault = chain(edit(WEB, WRITABLE, with_annotation(f"{WAIVE}{ROOT_FS}", REASON)), edit(WORKER, WRITABLE))
    report = analyze(in_phase(phase, fault(compliant["prod"])))
    assert _found(report, ROOT_FS) == {("mandatory", WORKER)}, report.violations
    waivers = [v for v in report.violations if v.policy == "waiver-report"]
    assert [(v.level, v.resource) for v in waivers] == [("advisory", WEB)]
    assert f"waived {ROOT_FS}: {REASON}" in waivers[0].message
    text = format_report(report)
    section = text.split("WAIVERS")[1]
    assert f"{WEB}: waived {ROOT_FS}: {REASON}" in section, text
    assert f"{WEB}: waived" not in text.split("WAIVERS")[0], "a waiver is listed once, in its own section"
    assert "1 waived." in text


@pytest.mark.parametrize("phase", PHASES)
def test_a_stack_policy_honours_the_waiver_of_the_resource_it_blames(
    phase: str, compliant: dict[str, Recording], analyze: Analyze
) -> None:
    unnamed = at("container.ports.0.name", "web")
    unwaived = analyze(in_phase(phase, edit(WEB, unnamed)(compliant["staging"])))
    assert ("mandatory", WEB) in _found(unwaived, "12f-port-binding")
    waiver = with_annotation(f"{WAIVE}12f-port-binding", "the port is renamed in release 42")
    report = analyze(in_phase(phase, edit(WEB, unnamed, waiver)(compliant["staging"])))
    assert WEB not in {r for _, r in _found(report, "12f-port-binding")}, report.violations
    assert ("advisory", WEB) in _found(report, "waiver-report")
    # Only the waived rule is spared: the probes (a floor rule) still name the renamed port.
    spared = {v.policy for v in unwaived.mandatory_violations} - {v.policy for v in report.mandatory_violations}
    assert spared == {"12f-port-binding"}, report.mandatory_violations


@pytest.mark.parametrize("phase", PHASES)
def test_a_floor_rule_cannot_be_waived(phase: str, compliant: dict[str, Recording], analyze: Analyze) -> None:
    """The waiver annotation is program code, the same in every stack: a floor rule waived in it would be waived
    in production. The rule keeps reporting and `waiver-reasons` refuses the annotation."""
    mismatch = at("spec.selector.matchLabels", {"app": "other"})
    waiver = with_annotation(f"{WAIVE}rollout-selector-integrity", "selector migrates in release 42")
    report = analyze(in_phase(phase, edit(WEB, mismatch, waiver)(compliant["prod"])))
    assert ("mandatory", WEB) in _found(report, "rollout-selector-integrity")
    refusals = [v for v in report.violations if v.policy == "waiver-reasons" and v.resource == WEB]
    assert [v.level for v in refusals] == ["mandatory"], report.violations
    assert "rollout-selector-integrity cannot be waived (it is part of the platform floor" in refusals[0].message
    assert not _found(report, "waiver-report")


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_waiver_without_a_reason_waives_nothing(
    reason: str, compliant: dict[str, Recording], analyze: Analyze
) -> None:
    report = analyze(edit(WEB, WRITABLE, with_annotation(f"{WAIVE}{ROOT_FS}", reason))(compliant["staging"]))
    assert ("mandatory", WEB) in _found(report, ROOT_FS)
    assert ("mandatory", WEB) in _found(report, "waiver-reasons")
    assert not _found(report, "waiver-report")


@pytest.mark.parametrize("stack", STACKS)
def test_no_cpu_limits_is_the_default_decision_and_the_platform_may_require_them(
    stack: str, compliant: dict[str, Recording], pack: PolicyPackProcess
) -> None:
    config = load_policy_config(CONFIG_DIR / f"{stack}.json")
    pack.configure(config)
    assert not _found(pack.analyze(compliant[stack]), "hardening-resources")
    pack.configure({**config, "hardening-resources": {"requireCpuLimits": True}})
    try:
        found = [v for v in pack.analyze(compliant[stack]).violations if v.policy == "hardening-resources"]
    finally:
        pack.configure(config)  # the pack process is shared by the session
    assert found and all("limits.cpu" in v.message for v in found), found
    assert {v.resource for v in found} >= {WEB, WORKER}
