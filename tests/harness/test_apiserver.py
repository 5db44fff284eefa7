"""The API-server model: each default against the Kubernetes function it copies, plus the stacks' own objects."""

from __future__ import annotations

import base64
import copy
import inspect
import ipaddress
import json
import re
from typing import Any

import pulumi_kubernetes
import pytest

# The guard below reads the model's own tables: what it defaults, and which groups the API server serves.
from harness.apiserver import (
    _BUILT_IN_GROUPS,
    _KINDS,
    FIELD_MANAGER,
    NOT_MODELLED,
    SERVER_VERSIONS,
    checkpoint,
    server_object,
    server_objects,
)
from harness.recording import Recording
from harness.stack_config import REPO_ROOT
from tests.conftest import STACKS

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"


def pod_template(**spec: Any) -> dict[str, Any]:
    container = {"name": "app", "image": "registry.example.com/app:1.0", **spec.pop("container", {})}
    return {"metadata": {"labels": {"app": "demo"}}, "spec": {"containers": [container], **spec}}


def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"selector": {"matchLabels": {"app": "demo"}}, "template": pod_template(), **spec},
    }


def job(**spec: Any) -> dict[str, Any]:
    template = spec.pop("template", pod_template(restartPolicy="Never"))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "demo", "labels": {"app": "demo"}},
        "spec": {"template": template, **spec},
    }


def service(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"selector": {"app": "demo"}, "ports": [{"name": "http", "port": 80.0}], **spec},
    }


def template_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def live(manifest: dict[str, Any]) -> dict[str, Any]:
    return server_object(manifest, dry_run=False)


def test_deployment_defaults_follow_set_defaults_deployment() -> None:
    """pkg/apis/apps/v1/defaults.go SetDefaults_Deployment."""
    spec = live(deployment())["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600


def test_recreate_strategy_gets_no_rolling_update() -> None:
    """SetDefaults_Deployment fills rollingUpdate only for the RollingUpdate type."""
    assert live(deployment(strategy={"type": "Recreate"}))["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("manifest", "path", "value"),
    [
        (deployment(replicas=0.0), ("spec", "replicas"), 0.0),
        (deployment(strategy={"rollingUpdate": {"maxSurge": 1}}), ("spec", "strategy", "rollingUpdate", "maxSurge"), 1),
        (deployment(progressDeadlineSeconds=300), ("spec", "progressDeadlineSeconds"), 300),
        (job(backoffLimit=0), ("spec", "backoffLimit"), 0),
        (job(completions=3, parallelism=2), ("spec", "parallelism"), 2),
        (service(sessionAffinity="ClientIP"), ("spec", "sessionAffinity"), "ClientIP"),
        (service(clusterIP="10.96.7.7"), ("spec", "clusterIPs"), ["10.96.7.7"]),
        (
            service(ports=[{"port": 80, "targetPort": "http", "protocol": "UDP"}]),
            ("spec", "ports", 0, "protocol"),
            "UDP",
        ),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else None,
)
def test_a_value_the_user_set_is_never_replaced_by_a_default(
    manifest: dict[str, Any], path: tuple[Any, ...], value: Any
) -> None:
    node: Any = live(manifest)
    for part in path:
        node = node[part]
    assert node == value


def test_user_set_pod_fields_survive_defaulting() -> None:
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5, "failureThreshold": 30}
    template = pod_template(
        container={"imagePullPolicy": "Always", "readinessProbe": probe}, terminationGracePeriodSeconds=0
    )
    spec = template_spec(live(deployment(template=template)))
    assert spec["terminationGracePeriodSeconds"] == 0
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "Always"
    assert container["readinessProbe"]["periodSeconds"] == 5
    assert container["readinessProbe"]["failureThreshold"] == 30


def test_pod_template_defaults_follow_set_defaults_pod_spec_and_nested_defaulters() -> None:
    """pkg/apis/core/v1/defaults.go SetDefaults_PodSpec, SetDefaults_Container, SetDefaults_Probe,
    SetDefaults_HTTPGetAction, SetDefaults_SecretVolumeSource, SetDefaults_ObjectFieldSelector, SetDefaults_Volume;
    ContainerPort protocol `+default="TCP"`."""
    container = {
        "ports": [{"containerPort": 3002}],
        "livenessProbe": {"httpGet": {"port": 3002}},
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }
    volumes = [
        {"name": "auth", "secret": {"secretName": "s"}},
        {"name": "cfg", "configMap": {"name": "c"}},
        {"name": "x"},
    ]
    spec = template_spec(live(deployment(template=pod_template(container=container, volumes=volumes))))
    assert {k: spec[k] for k in ("dnsPolicy", "restartPolicy", "securityContext", "schedulerName")} == {
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "securityContext": {},
        "schedulerName": "default-scheduler",
    }
    assert spec["terminationGracePeriodSeconds"] == 30
    c = spec["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == {}
    assert c["ports"][0]["protocol"] == "TCP"
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    probe = c["livenessProbe"]
    assert (probe["timeoutSeconds"], probe["periodSeconds"], probe["successThreshold"], probe["failureThreshold"]) == (
        1,
        10,
        1,
        3,
    )
    assert probe["httpGet"] == {"port": 3002, "path": "/", "scheme": "HTTP"}
    assert spec["volumes"][0]["secret"]["defaultMode"] == 420
    assert spec["volumes"][1]["configMap"]["defaultMode"] == 420
    assert spec["volumes"][2] == {"name": "x", "emptyDir": {}}


def test_bare_pod_defaults_do_not_reach_pod_templates() -> None:
    """SetDefaults_Pod (requests from limits, enableServiceLinks) is for Pods only, as its comment in defaults.go
    says; templates go through SetDefaults_PodSpec alone."""
    template = pod_template(container={"resources": {"limits": {"memory": "256Mi"}}})
    spec = template_spec(live(deployment(template=template)))
    assert spec["containers"][0]["resources"] == {"limits": {"memory": "256Mi"}}
    assert "enableServiceLinks" not in spec


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("registry:5000/team/nginx", "Always"),
        ("registry:5000/team/nginx:1.27", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
    ],
)
def test_image_pull_policy_follows_the_image_tag(image: str, policy: str) -> None:
    """SetDefaults_Container with pkg/util/parsers ParseImageName: no tag and no digest means "latest"."""
    spec = template_spec(live(deployment(template=pod_template(container={"image": image}))))
    assert spec["containers"][0]["imagePullPolicy"] == policy


def test_service_account_name_is_mirrored_into_the_deprecated_field() -> None:
    """pkg/apis/core/v1/conversion.go Convert_core_PodSpec_To_v1_PodSpec: serviceAccount = serviceAccountName."""
    spec = template_spec(live(deployment(template=pod_template(serviceAccountName="web"))))
    assert spec["serviceAccount"] == "web"
    assert spec["serviceAccountName"] == "web"


def test_deprecated_service_account_alone_fills_service_account_name() -> None:
    """Convert_v1_PodSpec_To_core_PodSpec takes serviceAccount when serviceAccountName is empty."""
    spec = template_spec(live(deployment(template=pod_template(serviceAccount="legacy"))))
    assert spec["serviceAccountName"] == "legacy"


def test_no_service_account_means_no_mirror() -> None:
    assert "serviceAccount" not in template_spec(live(deployment()))


def test_secret_string_data_comes_back_as_base64_data() -> None:
    """conversion.go Convert_v1_Secret_To_core_Secret (stringData overwrites data) and SetDefaults_Secret (Opaque)."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "auth", "namespace": "demo"},
        "data": {"kept": base64.b64encode(b"old").decode(), "password": base64.b64encode(b"old").decode()},
        "stringData": {"password": "s3cr3t:é"},
    }
    obj = live(manifest)
    assert obj["type"] == "Opaque"
    assert "stringData" not in obj
    assert base64.b64decode(obj["data"]["password"]).decode() == "s3cr3t:é"
    assert base64.b64decode(obj["data"]["kept"]) == b"old"


def test_secret_type_the_user_set_is_kept() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "r"},
        "type": "kubernetes.io/dockerconfigjson",
    }
    assert live(manifest)["type"] == "kubernetes.io/dockerconfigjson"


def test_cluster_ip_service_defaults() -> None:
    """SetDefaults_Service and pkg/registry/core/service/storage/alloc.go initIPFamilyFields / allocClusterIPs."""
    spec = live(service())["spec"]
    assert (spec["type"], spec["sessionAffinity"], spec["internalTrafficPolicy"]) == ("ClusterIP", "None", "Cluster")
    assert spec["ports"][0]["protocol"] == "TCP"
    assert spec["ports"][0]["targetPort"] == spec["ports"][0]["port"]
    assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")
    assert "externalTrafficPolicy" not in spec


def test_headless_service_keeps_none_and_is_single_stack_with_a_selector() -> None:
    """alloc.go: headless with a selector is SingleStack; clusterIPs mirrors clusterIP."""
    spec = live(service(clusterIP="None"))["spec"]
    assert (spec["clusterIP"], spec["clusterIPs"]) == ("None", ["None"])
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")


def test_headless_selectorless_service_defaults_to_require_dual_stack() -> None:
    """alloc.go initIPFamilyFields special case: headless + selectorless."""
    manifest = service(clusterIP="None")
    del manifest["spec"]["selector"]
    spec = live(manifest)["spec"]
    assert (spec["ipFamilyPolicy"], spec["ipFamilies"]) == ("RequireDualStack", ["IPv4", "IPv6"])


def test_load_balancer_service_gets_node_ports_and_external_traffic_policy() -> None:
    """SetDefaults_Service: externalTrafficPolicy for externally accessible Services, allocateLoadBalancerNodePorts."""
    spec = live(service(type="LoadBalancer"))["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767


def test_stateful_set_defaults_and_claim_templates() -> None:
    """apps/v1 SetDefaults_StatefulSet; conversion.go Convert_apps_StatefulSetSpec_To_v1_StatefulSetSpec sets
    apiVersion/kind on claim templates; core/v1 SetDefaults_PersistentVolumeClaim(Spec)."""
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    manifest = deployment(serviceName="db", volumeClaimTemplates=[claim])
    manifest["kind"] = "StatefulSet"
    spec = server_object(manifest, dry_run=False, server=(1, 30))["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert (spec["replicas"], spec["revisionHistoryLimit"]) == (1, 10)
    template = spec["volumeClaimTemplates"][0]
    assert (template["apiVersion"], template["kind"]) == ("v1", "PersistentVolumeClaim")
    assert template["spec"]["volumeMode"] == "Filesystem"
    assert template["status"] == {"phase": "Pending"}
    assert template_spec({"spec": spec})["dnsPolicy"] == "ClusterFirst"


def test_from_1_35_a_stateful_set_rolls_one_pod_at_a_time_by_default() -> None:
    """MaxUnavailableStatefulSet is on by default from 1.35: SetDefaults_StatefulSet sets maxUnavailable to 1 on a
    RollingUpdate strategy that has rollingUpdate, and leaves a given value or an OnDelete strategy alone."""
    manifest = deployment(serviceName="db")
    manifest["kind"] = "StatefulSet"
    assert server_object(manifest, dry_run=True, server=(1, 35))["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"partition": 0, "maxUnavailable": 1},
    }
    manifest["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}
    assert server_object(manifest, dry_run=True, server=(1, 35))["spec"]["updateStrategy"]["rollingUpdate"] == {
        "maxUnavailable": 2,
        "partition": 0,
    }
    manifest["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert server_object(manifest, dry_run=True, server=(1, 35))["spec"]["updateStrategy"] == {"type": "OnDelete"}


@pytest.mark.parametrize(("server", "printed"), [((1, 30), True), ((1, 32), True), ((1, 33), False), ((1, 35), False)])
def test_servers_before_1_33_print_a_null_template_creation_timestamp(server: tuple[int, int], printed: bool) -> None:
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    manifest = deployment(serviceName="db", volumeClaimTemplates=[claim])
    manifest["kind"] = "StatefulSet"
    spec = server_object(manifest, dry_run=False, server=server)["spec"]
    for template in (spec["template"], spec["volumeClaimTemplates"][0]):
        assert ("creationTimestamp" in template["metadata"]) is printed
        assert template["metadata"].get("creationTimestamp") is None


def test_job_defaults_follow_set_defaults_job() -> None:
    """pkg/apis/batch/v1/defaults.go SetDefaults_Job (JobPodReplacementPolicy gate on)."""
    spec = live(job())["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert (spec["completionMode"], spec["suspend"], spec["manualSelector"]) == ("NonIndexed", False, False)
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert live(job(podFailurePolicy={"rules": []}))["spec"]["podReplacementPolicy"] == "Failed"
    assert live(job(backoffLimitPerIndex=1, completionMode="Indexed"))["spec"]["backoffLimit"] == 2147483647


def test_job_gets_a_generated_selector_and_template_labels() -> None:
    """pkg/registry/batch/job/strategy.go generateSelector: both label generations on the template, the prefixed
    controller-uid alone in the selector; the Job's own labels stay as given."""
    obj = live(job())
    uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
    assert obj["spec"]["selector"] == {"matchLabels": {CONTROLLER_UID: uid}}
    labels = obj["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        "app": "demo",
        "job-name": name,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        CONTROLLER_UID: uid,
    }
    assert obj["metadata"]["labels"] == {"app": "demo"}


def test_an_unlabelled_job_shares_its_template_labels_including_generated_ones() -> None:
    """SetDefaults_Job assigns the template's label map to an unlabelled Job; generateSelector then adds to it."""
    manifest = job()
    del manifest["metadata"]["labels"]
    obj = live(manifest)
    assert obj["metadata"]["labels"] == obj["spec"]["template"]["metadata"]["labels"]
    assert obj["metadata"]["labels"][CONTROLLER_UID] == obj["metadata"]["uid"]


def test_manual_selector_job_gets_no_generated_selector() -> None:
    manifest = job(manualSelector=True, selector={"matchLabels": {"app": "demo"}})
    obj = live(manifest)
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "demo"}}
    assert obj["spec"]["template"]["metadata"]["labels"] == {"app": "demo"}


def test_live_job_is_complete() -> None:
    status = live(job(completions=2, parallelism=1))["status"]
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("SuccessCriteriaMet", "True"),
        ("Complete", "True"),
    ]
    assert status["succeeded"] == 2


def test_live_deployment_is_available_with_a_revision() -> None:
    obj = live(deployment(replicas=3.0))
    assert obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"] == 1
    assert (
        status["replicas"] == status["updatedReplicas"] == status["readyReplicas"] == status["availableReplicas"] == 3
    )
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Available": "True", "Progressing": "True"}


def test_hpa_defaults_follow_autoscaling_v2() -> None:
    """pkg/apis/autoscaling/v2/defaults.go: minReplicas 1, CPU 80% when no metrics, behavior filled only if set."""
    manifest: dict[str, Any] = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"maxReplicas": 5, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
    }
    spec = live(manifest)["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}
    ]
    assert "behavior" not in spec
    manifest["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 60}}
    behavior = live(manifest)["spec"]["behavior"]
    assert behavior["scaleDown"] == {
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        "stabilizationWindowSeconds": 60,
    }
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleUp"]["policies"] == [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]


@pytest.mark.parametrize(
    ("spec", "policy_types"),
    [({}, ["Ingress"]), ({"egress": [{}]}, ["Ingress", "Egress"]), ({"policyTypes": ["Egress"]}, ["Egress"])],
)
def test_network_policy_types_follow_set_defaults_network_policy(spec: dict[str, Any], policy_types: list[str]) -> None:
    """pkg/apis/networking/v1/defaults.go SetDefaults_NetworkPolicy."""
    manifest = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"}, "spec": spec}
    assert live(manifest)["spec"]["policyTypes"] == policy_types


def test_network_policy_ports_default_to_tcp() -> None:
    """SetDefaults_NetworkPolicyPort."""
    rule = {"ports": [{"port": 53}, {"port": 53, "protocol": "UDP"}]}
    manifest = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"}}
    manifest["spec"] = {"egress": [rule]}
    ports = live(manifest)["spec"]["egress"][0]["ports"]
    assert [p["protocol"] for p in ports] == ["TCP", "UDP"]


def test_namespace_gets_its_name_label_and_the_kubernetes_finalizer() -> None:
    """core/v1 SetDefaults_Namespace; pkg/registry/core/namespace/strategy.go PrepareForCreate."""
    obj = live({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "labels": {"team": "a"}}})
    assert obj["metadata"]["labels"] == {"team": "a", "kubernetes.io/metadata.name": "demo"}
    assert obj["spec"]["finalizers"] == ["kubernetes"]
    assert obj["status"] == {"phase": "Active"}


def test_custom_resources_get_server_metadata_only() -> None:
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"podMetricsEndpoints": [{"port": "http"}]},
    }
    obj = live(manifest)
    assert obj["spec"] == manifest["spec"]
    assert "status" not in obj
    assert obj["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    "manifest",
    [
        deployment(),
        job(),
        service(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"}, "spec": {}},
    ],
    ids=lambda m: m["kind"],
)
def test_status_and_resource_version_only_on_the_live_object(manifest: dict[str, Any]) -> None:
    dry = server_object(manifest, dry_run=True)
    assert "status" not in dry
    assert "resourceVersion" not in dry["metadata"]
    assert dry["metadata"]["uid"]
    real = live(manifest)
    assert real["status"]
    assert real["metadata"]["resourceVersion"].isdigit()


def test_ingress_live_status_has_a_load_balancer_address() -> None:
    """pulumi-kubernetes provider/pkg/await/ingress.go waits for status.loadBalancer.ingress."""
    manifest = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"}, "spec": {}}
    assert live(manifest)["status"]["loadBalancer"]["ingress"][0]["ip"]


def test_same_input_gives_byte_identical_output_and_names_give_distinct_uids() -> None:
    first, second = (json.dumps(server_object(job(), dry_run=False)) for _ in range(2))
    assert first == second
    other = job()
    other["metadata"]["name"] = "migrate-2"
    assert live(other)["metadata"]["uid"] != live(job())["metadata"]["uid"]


def test_inputs_are_not_mutated() -> None:
    manifest = job()
    before = copy.deepcopy(manifest)
    live(manifest)
    assert manifest == before


def test_apply_is_recorded_in_managed_fields() -> None:
    entries = live(deployment())["metadata"]["managedFields"]
    apply = entries[0]
    assert (apply["manager"], apply["operation"], apply["apiVersion"]) == (FIELD_MANAGER, "Apply", "apps/v1")
    containers = apply["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert '"k:{\\"name\\":\\"app\\"}"' in json.dumps(containers)
    assert any(e.get("subresource") == "status" for e in entries[1:])


@pytest.mark.parametrize("missing", ["apiVersion", "kind"])
def test_a_manifest_without_identity_is_rejected_naming_the_key(missing: str) -> None:
    manifest = deployment()
    del manifest[missing]
    with pytest.raises(ValueError, match=missing):
        server_object(manifest, dry_run=True)


def test_checkpoint_adds_the_provider_keys() -> None:
    """pulumi-kubernetes provider.go checkpointObject; x-kubernetes-* keys become underscored."""
    inputs = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "Thing", "metadata": {"name": "t"}}
    inputs["spec"] = {"schema": {"x-kubernetes-preserve-unknown-fields": True}}
    state = checkpoint(inputs, server_object(inputs, dry_run=False), field_manager="pulumi-kubernetes-abc12345")
    assert state["__inputs"]["spec"] == {"schema": {"x_kubernetes_preserve_unknown_fields": True}}
    assert state["spec"] == state["__inputs"]["spec"]
    assert (state["__initialApiVersion"], state["__fieldManager"]) == (
        "apiextensions.k8s.io/v1",
        "pulumi-kubernetes-abc12345",
    )
    assert state["metadata"]["uid"]


def test_not_modelled_lists_the_known_gaps() -> None:
    text = " ".join(NOT_MODELLED).lower()
    for gap in ("webhook", "limitrange", "podsecurity", "check step", "controllers"):
        assert gap in text


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_of_the_stacks_goes_through(recordings: dict[str, Recording], stack: str) -> None:
    resources = [r for r in recordings[stack] if r.type.startswith("kubernetes:")]
    assert resources
    kinds = set()
    for resource in resources:
        for dry_run in (True, False):
            obj = server_object(resource.inputs, dry_run=dry_run)
            assert obj["metadata"]["uid"], resource.urn
        kinds.add(resource.inputs["kind"])
    assert {"Deployment", "StatefulSet", "Job", "Service", "Secret"} <= kinds


# The policy tests add these to the stacks (tests/policy/test_stacks.py, tests/policy/test_bad_variants.py).
_KINDS_TESTS_ADD = {("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")}


def _kinds_the_program_constructs() -> set[tuple[str, str]]:
    """Every `k8s.<group>.<version>.<Kind>(` in the program's source, whatever the settings enable, as the
    (apiVersion, kind) of the SDK class's type token."""
    sources = [REPO_ROOT / "__main__.py", *sorted((REPO_ROOT / "components").glob("*.py"))]
    text = "\n".join(path.read_text() for path in sources)
    kinds = set()
    for module, version, kind in set(re.findall(r"\bk8s\.(\w+)\.(\w+)\.(\w+)\(", text)):
        sdk_class = getattr(getattr(getattr(pulumi_kubernetes, module), version), kind)
        token = re.search(rf"'kubernetes:([\w.]+/\w+):{kind}'", inspect.getsource(sdk_class))
        assert token, f"no type token in pulumi_kubernetes.{module}.{version}.{kind}"
        kinds.add((token.group(1).removeprefix("core/"), kind))
    return kinds


def test_every_built_in_kind_the_stacks_declare_is_modelled(recordings: dict[str, Recording]) -> None:
    recorded = {
        (resource.inputs["apiVersion"], resource.inputs["kind"])
        for recording in recordings.values()
        for resource in recording
        if resource.type.startswith("kubernetes:")
    }
    constructed = _kinds_the_program_constructs()
    assert constructed >= {("apps/v1", "Deployment"), ("batch/v1", "Job")}, "the source scan found the program"
    declared = recorded | constructed | _KINDS_TESTS_ADD
    built_in = {(api, kind) for api, kind in declared if api.rpartition("/")[0] in _BUILT_IN_GROUPS}
    # A kind outside `_KINDS` would get server metadata only: no defaults, no status. Model it there, with
    # `_no_defaults` where its API group's defaults.go has no defaulter for it.
    assert sorted(built_in - _KINDS.keys()) == []
    assert declared - built_in, "custom resources (the PodMonitor) are declared and left to the CRD"


def test_role_bindings_default_their_role_ref_and_user_subjects_group() -> None:
    """pkg/apis/rbac/v1/defaults.go `SetDefaults_ClusterRoleBinding` and `SetDefaults_Subject`."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "admins"},
        "roleRef": {"kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "name": "ada"}, {"kind": "ServiceAccount", "name": "web", "namespace": "demo"}],
    }
    obj = live(binding)
    assert obj["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert obj["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    assert "apiGroup" not in obj["subjects"][1], "a ServiceAccount's group is the empty (omitted) core group"


def _containers(value: Any) -> list[Any]:
    """Every dict and list in `value`, itself included."""
    found = []
    if isinstance(value, dict | list):
        found.append(value)
        for child in value.values() if isinstance(value, dict) else value:
            found.extend(_containers(child))
    return found


def _statefulset_without_max_unavailable() -> dict[str, Any]:
    template = pod_template()
    del template["metadata"]  # 1.30 adds it (with a null creationTimestamp); 1.35 leaves it out
    update = {"type": "RollingUpdate", "rollingUpdate": {}}  # 1.35 defaults maxUnavailable
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "demo"},
        "spec": {"selector": {"matchLabels": {"app": "demo"}}, "template": template, "updateStrategy": update},
    }


def _http_route() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"parentRefs": [{"name": "gateway"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
    }


@pytest.mark.parametrize("stack", STACKS)
def test_objects_for_several_servers_are_each_servers_own_and_share_nothing(
    recordings: dict[str, Recording], stack: str
) -> None:
    """`server_objects` does the version-independent work once: each server's object must still be exactly what
    `server_object` gives for that server alone, and no dict or list may be shared between the servers' objects, with
    the manifest, or within one object (a later step mutating one must never change another view)."""
    manifests = [r.inputs for r in recordings[stack] if r.type.startswith("kubernetes:")]
    manifests += [_statefulset_without_max_unavailable(), deployment(), job(), _http_route()]
    differ = set()
    for manifest in manifests:
        before = copy.deepcopy(manifest)
        for dry_run in (True, False):
            objects = server_objects(manifest, dry_run=dry_run, servers=SERVER_VERSIONS)
            assert objects == [server_object(manifest, dry_run=dry_run, server=s) for s in SERVER_VERSIONS]
            if objects[0] != objects[-1]:
                differ.add(manifest["kind"])
            seen: dict[int, str] = {id(c): "manifest" for c in _containers(manifest)}
            for server, obj in zip(SERVER_VERSIONS, objects, strict=True):
                for container in _containers(obj):
                    owner = seen.get(id(container))
                    assert owner is None, f"{manifest['kind']} for {server} shares a value with {owner}"
                    seen[id(container)] = str(server)
        assert manifest == before, "the manifest is left as it was"
    assert {"Deployment", "StatefulSet", "Job"} <= differ  # the versions' differences were exercised
