"""network-least-access reads selectors and ports by meaning, and its settings decide what is allowed."""

from __future__ import annotations

from harness.analyzer import PolicyPackProcess, load_policy_config
from harness.recording import Recording
from tests.policy.conftest import CONFIG_DIR, Analyze
from tests.policy.stack_edits import at, chain, edit

LEAST_ACCESS = "network-least-access"
NAME = "kubernetes.io/metadata.name"


def _namespaces_in(*names: str) -> dict[str, object]:
    return {"namespaceSelector": {"matchExpressions": [{"key": NAME, "operator": "In", "values": list(names)}]}}


def test_equivalent_spellings_are_compliant(compliant: dict[str, Recording], analyze: Analyze) -> None:
    respelled = chain(
        # The Postgres container names its port `postgres`; the policy resolves it to 5432 on the selected pods.
        edit("notes-network-postgres-ingress", at("spec.ingress.0.ports.0.port", "postgres")),
        # `In` pins a namespace as tightly as matchLabels does.
        edit("notes-network-app-ingress", at("spec.ingress.0.from", [_namespaces_in("ingress-nginx", "monitoring")])),
        edit(
            "notes-network-allow-dns",
            at("spec.egress.0.to.0.namespaceSelector", _namespaces_in("kube-system")["namespaceSelector"]),
        ),
    )
    report = analyze(respelled(compliant["prod"]))
    assert not [v.message for v in report.violations if v.policy == LEAST_ACCESS]


def test_the_policy_settings_decide_what_is_allowed(pack: PolicyPackProcess, compliant: dict[str, Recording]) -> None:
    config = load_policy_config(CONFIG_DIR / "prod.json")
    settings = {"ingressNamespaces": ["traefik"], "dnsNamespace": "dns-system"}
    try:
        pack.configure({**config, LEAST_ACCESS: settings})
        report = pack.analyze(compliant["prod"])
    finally:
        pack.configure(config)
    found = {(v.resource, v.message.split(": ", 1)[1]) for v in report.violations if v.policy == LEAST_ACCESS}
    assert found == {
        (
            "notes-network-app-ingress",
            "ingress rule 1 admits namespaces ingress-nginx on the app's port 3002; "
            f"admit only namespaceSelector {NAME} in [traefik, monitoring] (set by shipsafe:app.ingressNamespace; "
            f"or, if the platform owner agrees, policy setting {LEAST_ACCESS}.ingressNamespaces, "
            f"{LEAST_ACCESS}.monitoringNamespaces)",
        ),
        (
            "notes-network-allow-dns",
            "egress rule 1 sends DNS (port 53) to namespaces kube-system; "
            f"send it only to namespaceSelector {NAME}=dns-system with podSelector k8s-app=kube-dns",
        ),
    }
