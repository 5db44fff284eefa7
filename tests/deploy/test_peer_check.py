"""The peer comparison's bookkeeping: what counts as made by the pack, documented, or undocumented; the decisions
table names only the pack's own rules; stacks and manifests are found, not listed."""

from __future__ import annotations

from deploy.peer_decisions import load_decisions
from deploy.policy_link import pack_registry
from tests.support.peer_check import Finding, verdicts

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
