"""Identity and RBAC: a ServiceAccount per component, no API token, least-privilege roles."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import PolicyResource

from .. import k8s
from ..framework import Config, HasProps, Item, Section, item_by_item
from ..k8s import Lookup, dig, items

SECTION = Section(__name__, "identity", topic="Sec")

_DANGEROUS_VERBS = {"bind", "escalate", "impersonate"}
_EXEC_RESOURCES = {"pods/exec", "pods/attach", "nodes/proxy"}


@SECTION.stack(
    "identity-dedicated-service-account",
    "Every workload runs as its own ServiceAccount defined in the stack (never `default`).",
    "Create a ServiceAccount per component and set serviceAccountName.",
)
@item_by_item
def check_dedicated_service_account(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str | None]]:
    accounts = Lookup()
    for account in k8s.of_type(resources, k8s.SERVICE_ACCOUNT):
        with accounts.adding():
            accounts.entries[(dig(account.props, "metadata", "namespace"), dig(account.props, "metadata", "name"))] = (
                account
            )
    owners: dict[tuple[Any, Any], set[Any]] = {}
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        where = k8s.display(workload)
        with item():
            name = _service_account(k8s.pod_spec(workload))
            if not name or name == "default":
                yield f"{where}: set serviceAccountName to a ServiceAccount of its own", workload.urn
                continue
            namespace = dig(workload.props, "metadata", "namespace")
            owners.setdefault((namespace, name), set()).add(k8s.labels(workload).get(k8s.COMPONENT))
            if not accounts.has((namespace, name)):
                yield f"{where}: ServiceAccount {name} is not defined in this stack; create it", workload.urn
    for (_, name), components in sorted(owners.items(), key=lambda kv: str(kv[0])):
        if len(components) > 1:
            listed = ", ".join(sorted(str(c) for c in components))
            yield f"ServiceAccount {name} is shared by components {listed}; give each its own", None


def _service_account(spec: Any) -> Any:
    """The account the pods run as, read as the API server reads it: kubernetes `pkg/apis/core/v1/conversion.go`
    takes the deprecated `serviceAccount` when `serviceAccountName` is empty, and on the way out always mirrors
    `serviceAccountName` into `serviceAccount`. So a live object carries both, equal, whichever was declared."""
    return dig(spec, "serviceAccountName") or dig(spec, "serviceAccount")


@SECTION.resource(
    "identity-service-account-name",
    "Pod templates name their ServiceAccount with serviceAccountName, never the deprecated serviceAccount field.",
    "Replace serviceAccount by serviceAccountName in the pod spec.",
    types=k8s.WORKLOADS,
)
def check_service_account_name(res: HasProps, config: Config) -> Iterator[str]:
    # What the user declared (the provider's Check output): on a live object the server has mirrored
    # serviceAccountName into serviceAccount, so this can only be judged here, never in a stack rule.
    if dig(k8s.pod_spec(res), "serviceAccount"):
        yield "replace the deprecated serviceAccount field by serviceAccountName"


@SECTION.resource(
    "identity-no-token-automount",
    "No API token reaches pods: ServiceAccounts and pod specs disable automount, no projected volume mounts a "
    "service-account token by hand, and no Secret holds a long-lived one.",
    "Set automountServiceAccountToken: false on the pod spec and the ServiceAccount; remove serviceAccountToken "
    "projections.",
    types={*k8s.WORKLOADS, k8s.SERVICE_ACCOUNT, k8s.SECRET},
)
@item_by_item
def check_no_token_automount(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if res.resource_type == k8s.SECRET:
        # The token controller fills such a Secret with a token that never expires, for any pod that mounts it.
        if res.props.get("type") == "kubernetes.io/service-account-token":
            yield "remove the kubernetes.io/service-account-token Secret: it holds a ServiceAccount token forever"
        return
    if res.resource_type == k8s.SERVICE_ACCOUNT:
        if res.props.get("automountServiceAccountToken") is not False:
            yield "set automountServiceAccountToken: false on the ServiceAccount"
        return
    spec = k8s.pod_spec(res)
    with item():
        if dig(spec, "automountServiceAccountToken") is not False:
            yield "set automountServiceAccountToken: false in the pod spec (the app never calls the API server)"
    with item():
        # A projected serviceAccountToken source is the same token (kube-api-access-* is built this way), mounted
        # whatever automountServiceAccountToken says.
        for volume in items(dig(spec, "volumes")):
            with item():
                if any(s.get("serviceAccountToken") is not None for s in items(dig(volume, "projected", "sources"))):
                    yield f"volume {volume.get('name')}: remove the serviceAccountToken projection (an API token)"


@SECTION.resource(
    "identity-rbac-least-privilege",
    "No cluster-wide RBAC; Roles have no wildcards, secret reads, exec or escalation verbs.",
    "Delete ClusterRole(Binding)s; narrow Role rules to explicit verbs and resources.",
    types={k8s.RBAC + kind for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")},
)
@item_by_item
def check_rbac(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if res.resource_type in k8s.CLUSTER_RBAC:
        yield "the app stack must not create cluster-wide RBAC; use a namespaced Role/RoleBinding"
    elif res.resource_type == k8s.RBAC + "RoleBinding":
        with item():
            if dig(res.props, "roleRef", "name") in ("cluster-admin", "admin", "edit"):
                yield f"do not bind the built-in {dig(res.props, 'roleRef', 'name')} role"
        with item():
            for subject in items(res.props.get("subjects")):
                with item():
                    if subject.get("kind") == "ServiceAccount" and subject.get("name") == "default":
                        yield "do not bind roles to the default ServiceAccount"
    else:
        for rule in items(res.props.get("rules")):
            with item():
                yield from _rule_findings(rule)


def _rule_findings(rule: Mapping[str, Any]) -> Iterator[str]:
    verbs, resources = set(items(rule.get("verbs"))), set(items(rule.get("resources")))
    if "*" in verbs or "*" in resources or "*" in set(items(rule.get("apiGroups"))):
        yield "replace wildcards in Role rules by explicit verbs, resources and apiGroups"
    if "secrets" in resources and verbs & {"get", "list", "watch"}:
        yield "do not grant get/list/watch on secrets"
    if resources & _EXEC_RESOURCES and "create" in verbs:
        yield "do not grant create on pods/exec, pods/attach or nodes/proxy"
    if verbs & _DANGEROUS_VERBS:
        yield f"remove the verbs {sorted(verbs & _DANGEROUS_VERBS)}"
