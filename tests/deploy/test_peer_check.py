"""The peer comparison's bookkeeping: what counts as made by the pack, documented, or undocumented; the decisions
table names only the pack's own rules; stacks and manifests are found, not listed."""

from __future__ import annotations

from pathlib import Path

from deploy.peer_check import Finding, _changed_documents, load_decisions, stack_names, verdicts
from deploy.policy_link import pack_registry
from harness.recording import Recording
from tests.policy.stack_edits import at, edit

WEB = "Deployment.notes-prod.notes-web"
CHECKS = {
    "CKV_A": {"name": "a", "rules": ["hardening-resources"]},
    "CKV_B": {"name": "b", "rules": ["hardening-high-uid-gid"], "decision": "recorded exception"},
}


def test_a_peer_finding_is_made_documented_or_undocumented() -> None:
    made = Finding("case", "CKV_A", WEB)
    elsewhere = Finding("other-case", "CKV_A", WEB)  # the pack reported the rule, but on another manifest set
    decided = Finding("case", "CKV_B", WEB)
    unknown = Finding("case", "CKV_C", WEB)
    pack = {"case": {("hardening-resources", WEB)}, "other-case": {("hardening-resources", "Service.x.y")}}
    assert verdicts([made, elsewhere, decided, unknown], pack, CHECKS) == {
        made: "made by hardening-resources",
        elsewhere: "undocumented",
        decided: "decision",
        unknown: "undocumented",
    }


def test_the_decisions_table_names_only_the_packs_rules_and_says_why() -> None:
    rules = {rule.name for rule in pack_registry().all_rules()}
    checks = load_decisions()["checks"]
    assert checks, "the table documents the peer's checks"
    for check, entry in checks.items():
        assert entry["name"], check
        assert set(entry.get("rules", [])) <= rules, f"{check} names rules the pack lacks"
        assert entry.get("rules") or entry.get("decision"), check


def test_stacks_are_discovered_from_their_settings_files(tmp_path: Path) -> None:
    for stack in ("qa", "eu-prod"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    (tmp_path / "Pulumi.yaml").write_text("name: x\n")
    assert stack_names(tmp_path) == ["eu-prod", "qa"]


def test_a_case_shows_checkov_only_the_objects_its_fault_changed(recordings: dict[str, Recording]) -> None:
    faulty = edit("notes-web-deployment", at("spec.replicas", 7))(recordings["prod"])
    documents = _changed_documents({"stack-prod": recordings["prod"], "web-replicas": faulty})
    assert [d["metadata"]["name"] for d in documents["web-replicas"]] == ["notes-web"]
    assert len(documents["stack-prod"]) == len([r for r in recordings["prod"] if r.type.startswith("kubernetes:")])
