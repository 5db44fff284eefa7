"""Zero-downtime rollout and hardening of every pod the stacks run."""

from __future__ import annotations

import json
from typing import Any

import yaml

from harness.recording import Recording
from harness.stack_config import REPO_ROOT
from tests.conftest import record
from tests.support.stack_queries import DEPLOYMENT, containers, pod_owners, pod_spec

RECOMMENDED_LABELS = {"name", "instance", "component", "part-of", "managed-by"}


def test_rolling_update_replaces_one_pod_at_a_time(recording: Recording) -> None:
    for deployment in recording.of_type(DEPLOYMENT):
        spec = deployment.inputs["spec"]
        assert spec["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        assert spec["minReadySeconds"] == 10


def test_probes_use_the_named_http_port(recording: Recording) -> None:
    for deployment in recording.of_type(DEPLOYMENT):
        container = containers(deployment)[0]
        assert container["ports"] == [{"name": "http", "containerPort": 3002, "protocol": "TCP"}]
        probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness", "liveness")}
        assert {probe["port"] for probe in probes.values()} == {"http"}
        assert probes["readiness"]["path"] == "/readyz"
        assert probes["liveness"]["path"] == probes["startup"]["path"] == "/healthz"


def test_pods_drain_before_sigterm_within_the_grace_period(recording: Recording) -> None:
    for deployment in recording.of_type(DEPLOYMENT):
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] == 30
        pre_stop = containers(deployment)[0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert 0 < pre_stop < 30


def _check_restricted(owner: str, pod: dict[str, Any]) -> None:
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True, owner
    assert isinstance(context["runAsUser"], float) and context["runAsUser"] > 0, owner
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}, owner
    assert pod["automountServiceAccountToken"] is False, owner
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, owner
        assert security["privileged"] is False, owner
        assert security["readOnlyRootFilesystem"] is True, owner
        assert security["capabilities"] == {"drop": ["ALL"]}, owner
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], owner
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"], owner


def test_every_pod_runs_restricted(recording: Recording) -> None:
    owners = pod_owners(recording)
    assert len(owners) >= 5
    for owner in owners:
        _check_restricted(owner.urn, pod_spec(owner))


def test_app_pods_run_as_the_images_numeric_user(recording: Recording) -> None:
    for owner in recording.of_type(DEPLOYMENT) + recording.of_type("kubernetes:batch/v1:Job"):
        assert pod_spec(owner)["securityContext"]["runAsUser"] == 10001, owner.urn


def test_every_container_has_requests_and_limits(recording: Recording) -> None:
    for owner in pod_owners(recording):
        for container in containers(owner):
            resources = container["resources"]
            assert {"cpu", "memory", "ephemeral-storage"} <= set(resources["requests"]), owner.urn
            assert {"memory", "ephemeral-storage"} <= set(resources["limits"]), owner.urn


def test_every_pod_has_its_own_service_account_without_token(recording: Recording) -> None:
    accounts = {a.inputs["metadata"]["name"]: a for a in recording.of_type("kubernetes:core/v1:ServiceAccount")}
    used = [pod_spec(owner)["serviceAccountName"] for owner in pod_owners(recording)]
    assert len(used) == len(set(used)), f"shared service accounts: {used}"
    for name in used:
        assert name != "default" and name in accounts, name
        assert accounts[name].inputs["automountServiceAccountToken"] is False


def test_pods_carry_recommended_labels_and_selectors_match(recording: Recording) -> None:
    for owner in pod_owners(recording):
        template_labels = owner.inputs["spec"]["template"]["metadata"]["labels"]
        assert {f"app.kubernetes.io/{key}" for key in RECOMMENDED_LABELS} <= set(template_labels), owner.urn
        selector = owner.inputs["spec"].get("selector", {}).get("matchLabels", {})
        assert selector.items() <= template_labels.items(), owner.urn


def test_each_deployment_is_covered_by_a_pdb_allowing_one_disruption(recording: Recording) -> None:
    budgets = recording.of_type("kubernetes:policy/v1:PodDisruptionBudget")
    for deployment in recording.of_type(DEPLOYMENT):
        pod_labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if b.inputs["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()]
        assert len(covering) == 1, deployment.urn
        assert covering[0].inputs["spec"]["maxUnavailable"] == 1
        assert covering[0].inputs["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_only_the_web_workload_is_served_through_an_internal_service(recording: Recording) -> None:
    services = [s for s in recording.of_type("kubernetes:core/v1:Service") if "web" in s.name]
    assert len(services) == 1
    spec = services[0].inputs["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"][0]["targetPort"] == "http"
    for service in recording.of_type("kubernetes:core/v1:Service"):
        assert service.inputs["spec"].get("type", "ClusterIP") == "ClusterIP", service.urn
    ingress = recording.of_type("kubernetes:networking.k8s.io/v1:Ingress")[0].inputs["spec"]
    assert ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]


def test_autoscaling_only_where_configured(recordings: dict[str, Recording]) -> None:
    hpa_type = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
    assert recordings["staging"].of_type(hpa_type) == []
    (hpa,) = recordings["prod"].of_type(hpa_type)
    assert hpa.inputs["spec"]["scaleTargetRef"]["name"] == "notes-web"
    assert (hpa.inputs["spec"]["minReplicas"], hpa.inputs["spec"]["maxReplicas"]) == (3, 10)
    web = recordings["prod"].named("notes-web-deployment")
    assert "replicas" not in web.inputs["spec"], "the autoscaler owns the replica count"
    assert recordings["staging"].named("notes-web-deployment").inputs["spec"]["replicas"] == 2


def _policy(recording: Recording, name: str) -> dict[str, Any]:
    return recording.named(f"notes-network-{name}").inputs["spec"]


def _allowed_components(rule_peer: dict[str, Any]) -> set[str]:
    return set(rule_peer["podSelector"]["matchExpressions"][0]["values"])


def test_network_is_denied_by_default_with_least_access(recording: Recording) -> None:
    assert _policy(recording, "default-deny") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    postgres = _policy(recording, "postgres-ingress")["ingress"][0]
    assert _allowed_components(postgres["from"][0]) == {"web", "worker", "migration"}
    assert postgres["ports"] == [{"protocol": "TCP", "port": 5432}]
    redis = _policy(recording, "redis-ingress")["ingress"][0]
    assert _allowed_components(redis["from"][0]) == {"web", "worker"}
    app = _policy(recording, "app-ingress")
    assert _allowed_components(app) == {"web"}
    assert _source_namespaces(app) == ["ingress-nginx"]
    metrics = _policy(recording, "metrics-ingress")
    assert _allowed_components(metrics) == {"web", "worker"}, "Prometheus must reach the worker's /metrics too"
    assert _source_namespaces(metrics) == ["monitoring"]
    for policy in (app, metrics):
        assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": "http"}]


def _source_namespaces(policy: dict[str, Any]) -> list[str]:
    return [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in policy["ingress"][0]["from"]
    ]


def test_every_workload_is_scraped_by_prometheus(recording: Recording) -> None:
    monitors = {m.name: m.inputs for m in recording.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")}
    for deployment in recording.of_type(DEPLOYMENT):
        template = deployment.inputs["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("3002", "/metrics")
        monitor = monitors[deployment.name.replace("-deployment", "-podmonitor")]
        assert monitor["spec"]["selector"]["matchLabels"] == deployment.inputs["spec"]["selector"]["matchLabels"]
        assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]


def test_ingress_serves_only_the_public_paths_over_tls(recording: Recording) -> None:
    ingress = recording.named("notes-web-ingress").inputs
    paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    assert paths == ["/notes"], "/metrics and the probe paths must not be public"
    assert ingress["spec"]["tls"] == [{"hosts": [ingress["spec"]["rules"][0]["host"]], "secretName": "notes-tls"}]


def test_cert_manager_issues_the_certificate_when_configured() -> None:
    app = {**yaml.safe_load((REPO_ROOT / "Pulumi.prod.yaml").read_text())["config"]["shipsafe:app"]}
    app["clusterIssuer"] = "letsencrypt"
    stack = record("prod", **{"shipsafe:app": json.dumps(app)})
    annotations = stack.named("notes-web-ingress").inputs["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
