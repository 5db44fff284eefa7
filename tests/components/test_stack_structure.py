"""Every component declares its resources, parents them, and registers outputs; both stacks."""

from __future__ import annotations

from harness.recording import Recording

COMPONENT_CHILDREN = {
    "shipsafe:components:AppNamespace": {"kubernetes:core/v1:Namespace"},
    "shipsafe:components:Registry": {"kubernetes:core/v1:Secret"},
    "shipsafe:components:AppImage": set(),  # builds only where configured; see test_release.py
    "shipsafe:components:AppConfig": {"kubernetes:core/v1:ConfigMap"},
    "shipsafe:components:MigrationJob": {"kubernetes:batch/v1:Job", "kubernetes:core/v1:ServiceAccount"},
    "shipsafe:components:BackingService": {
        "random:index/randomPassword:RandomPassword",
        "kubernetes:apps/v1:StatefulSet",
        "kubernetes:core/v1:Service",
        "kubernetes:core/v1:Secret",
        "kubernetes:core/v1:ServiceAccount",
    },
    "shipsafe:components:AppWorkload": {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:core/v1:ServiceAccount",
        "kubernetes:policy/v1:PodDisruptionBudget",
    },
    "shipsafe:components:NetworkPolicies": {"kubernetes:networking.k8s.io/v1:NetworkPolicy"},
}


def test_every_component_has_its_resources_as_children(recording: Recording) -> None:
    components = [r for r in recording if not r.custom]
    assert {c.type for c in components} == set(COMPONENT_CHILDREN)
    for component in components:
        child_types = {child.type for child in recording.children_of(component.urn)}
        missing = COMPONENT_CHILDREN[component.type] - child_types
        assert not missing, f"{component.urn} lacks {missing}"


def test_every_custom_resource_is_parented_to_a_component(recording: Recording) -> None:
    components = {r.urn for r in recording if not r.custom}
    orphans = [r.urn for r in recording if r.custom and r.parent not in components]
    assert not orphans, f"not parented to a component: {orphans}"


def test_children_are_named_after_their_component(recording: Recording) -> None:
    for resource in recording:
        if resource.custom:
            parent = recording.by_urn(resource.parent or "")
            assert resource.name.startswith(parent.name + "-"), resource.urn


def test_every_component_registers_outputs(recording: Recording) -> None:
    for component in (r for r in recording if not r.custom):
        assert component.urn in recording.component_outputs, f"{component.urn} never called register_outputs"


def test_workloads_from_config_share_one_image(recording: Recording) -> None:
    deployments = recording.of_type("kubernetes:apps/v1:Deployment")
    assert sorted(d.inputs["metadata"]["name"] for d in deployments) == ["notes-web", "notes-worker"]
    assert recording.stack_outputs["workloads"] == ["notes-web", "notes-worker"]


def test_everything_namespaced_lives_in_the_app_namespace(recording: Recording) -> None:
    namespace = recording.stack_outputs["namespace"]
    assert namespace == f"notes-{recording.stack}"
    for resource in recording:
        if resource.type.startswith("kubernetes:") and resource.type != "kubernetes:core/v1:Namespace":
            assert resource.inputs["metadata"]["namespace"] == namespace, resource.urn


def test_namespace_enforces_restricted_pod_security(recording: Recording) -> None:
    namespace = recording.of_type("kubernetes:core/v1:Namespace")[0]
    namespace_labels = namespace.inputs["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert namespace_labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert namespace_labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"
