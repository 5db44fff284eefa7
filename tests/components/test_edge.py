"""Edge protection: body-size and rate limits rendered for the controller the stack names (ingress-nginx or the
Gateway API with Envoy Gateway), checked by the `edge-*` policies; probe paths stay internal; ALLOWED_HOSTS."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from components.settings import APP_MAX_BODY_BYTES, ConfigError, parse_settings
from deploy.prerequisites import missing_prerequisites, requirements_for
from harness.analyzer import AnalysisReport, PolicyPackProcess, load_policy_config
from harness.apiserver import server_object
from harness.phases import model_phases
from harness.recording import RecordedResource, Recording
from harness.stack_config import REPO_ROOT, read_stack_config
from tests.conftest import STACKS, record
from tests.deploy.fake_apiserver import ClusterState, InProcessCluster, gateway
from tests.deploy.memory_stack import cluster_shape
from tests.policy.stack_edits import add_resource, at, drop, edit, new_resource

NGINX = "nginx.ingress.kubernetes.io/"
GATEWAY_EDGE = {"controller": "envoy-gateway", "gatewayName": "public", "gatewayNamespace": "edge"}
ROUTE, TRAFFIC_POLICY = "notes-web-httproute", "notes-web-traffic-policy"
HTTP_ROUTE_TYPE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
# The app is not an installed package (tests/app/conftest.py does the same): its own parsers judge ALLOWED_HOSTS.
if str(REPO_ROOT / "app") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "app"))


def app_settings(stack: str, **changes: Any) -> dict[str, Any]:
    return {**read_stack_config(stack)[1]["shipsafe:app"], **changes}


def by_name(recording: Recording, name: str) -> RecordedResource:
    return next(r for r in recording if r.name == name)


@pytest.fixture(scope="module")
def gateway_stack() -> Recording:
    return record("prod", **{"shipsafe:app": app_settings("prod", edge=GATEWAY_EDGE)})


@pytest.fixture(scope="module")
def analyze() -> Iterator[Any]:
    with PolicyPackProcess() as pack:

        def run(recording: Recording) -> AnalysisReport:
            pack.configure(load_policy_config(REPO_ROOT / "policy" / "config" / f"{recording.stack}.json"))
            return pack.analyze(recording)

        yield run


def edge_findings(report: AnalysisReport) -> set[tuple[str, str | None]]:
    return {(v.policy, v.resource) for v in report.violations if v.policy.startswith("edge-")}


# Settings ---------------------------------------------------------------------------------------------------------


def settings_problems(**app: Any) -> list[str]:
    raw = {key.removeprefix("shipsafe:"): value for key, value in read_stack_config("staging")[1].items()}
    raw["app"] = {**raw["app"], **app}
    try:
        parse_settings(raw)
    except ConfigError as error:
        return error.problems
    return []


def test_the_settings_cap_matches_the_apps_own() -> None:
    from notes_app.payloads import MAX_BODY_BYTES

    assert APP_MAX_BODY_BYTES == MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (
            {"edge": {"maxBodySize": "32Ki"}},
            "shipsafe:app.edge.maxBodySize = '32Ki': must be between the app's own cap",
        ),
        ({"edge": {"maxBodySize": "17Mi"}}, "and 16Mi"),
        ({"edge": {"maxBodySize": "1M"}}, "shipsafe:app.edge.maxBodySize = '1M'"),
        ({"edge": {"requestsPerSecond": 0}}, "shipsafe:app.edge.requestsPerSecond = 0"),
        ({"edge": {"controller": "traefik"}}, "'ingress-nginx' or 'envoy-gateway'"),
        ({"edge": {"controller": "envoy-gateway"}}, "envoy-gateway needs gatewayName"),
        ({"edge": {"gatewayName": "public"}}, "only used when controller is envoy-gateway"),
        ({"publicPaths": ["/notes", "/healthz"]}, "'/healthz' would route /healthz to the internet"),
        ({"publicPaths": ["/ready"], "readinessPath": "/ready/now"}, "would route /ready/now"),
        ({"allowedHostsEnv": "DATABASE_URL"}, "the URL and host variables must differ"),
    ],
)
def test_bad_edge_settings_are_refused_naming_the_key(app: dict[str, Any], expected: str) -> None:
    problems = settings_problems(**app)
    assert any(expected in problem for problem in problems), problems


def test_the_defaults_protect_and_route_no_probe() -> None:
    settings = parse_settings(
        {key.removeprefix("shipsafe:"): v for key, v in read_stack_config("staging")[1].items()}
    ).app
    assert settings.public_paths == ["/notes"]
    assert settings.edge.max_body_bytes == APP_MAX_BODY_BYTES
    assert settings.edge.requests_per_second > 0 and settings.edge.connections_per_client > 0


# Rendering --------------------------------------------------------------------------------------------------------


def test_the_ingress_carries_the_nginx_limits_from_the_settings() -> None:
    edge = {"maxBodySize": "1Mi", "requestsPerSecond": 7, "burstMultiplier": 3, "connectionsPerClient": 9}
    recording = record("staging", **{"shipsafe:app": app_settings("staging", edge=edge)})
    ingress = by_name(recording, "notes-web-ingress")
    annotations = ingress.inputs["metadata"]["annotations"]
    expected = {"proxy-body-size": "1024k", "limit-rps": "7", "limit-burst-multiplier": "3", "limit-connections": "9"}
    assert {k.removeprefix(NGINX): v for k, v in annotations.items() if k.startswith(NGINX)} == expected, ingress.urn
    assert (
        "shipsafe:app.edge.maxBodySize" in json.loads(annotations["shipsafe.dev/config-keys"])["metadata.annotations"]
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_real_stacks_route_only_public_paths(recordings: dict[str, Recording], stack: str) -> None:
    ingress = by_name(recordings[stack], "notes-web-ingress")
    paths = [p["path"] for rule in ingress.inputs["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths == ["/notes"], ingress.urn
    assert ingress.inputs["metadata"]["annotations"][NGINX + "proxy-body-size"] == "64k", ingress.urn


def test_envoy_gateway_renders_a_route_and_its_limits_instead_of_an_ingress(gateway_stack: Recording) -> None:
    assert not [r for r in gateway_stack if r.type.endswith(":Ingress")]
    route, policy = by_name(gateway_stack, ROUTE), by_name(gateway_stack, TRAFFIC_POLICY)
    assert route.inputs["spec"]["parentRefs"] == [{"name": "public", "namespace": "edge", "sectionName": "https"}]
    assert route.inputs["spec"]["hostnames"] == ["notes.example.com"]
    matches = route.inputs["spec"]["rules"][0]["matches"]
    assert matches == [{"path": {"type": "PathPrefix", "value": "/notes"}}], route.urn
    spec = policy.inputs["spec"]
    assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "notes-web"}]
    assert spec["requestBuffer"] == {"limit": "64Ki"}
    rules = spec["rateLimit"]["local"]["rules"]
    assert {r["clientSelectors"][0]["sourceCIDR"]["value"] for r in rules} == {"0.0.0.0/0", "::/0"}
    assert all(r["clientSelectors"][0]["sourceCIDR"]["type"] == "Distinct" for r in rules), policy.urn
    assert all(r["limit"] == {"requests": 20, "unit": "Second"} for r in rules), policy.urn


# ALLOWED_HOSTS ----------------------------------------------------------------------------------------------------


def test_allowed_hosts_name_the_public_host_and_the_web_service(recordings: dict[str, Recording]) -> None:
    from notes_app.config import Settings
    from notes_app.middleware import TrustedHostMiddleware

    config_map = by_name(recordings["staging"], "notes-config-configmap")
    hosts = config_map.inputs["data"]["ALLOWED_HOSTS"]
    service = "notes-web"
    expected = [
        "notes.staging.example.com",
        service,
        f"{service}.notes-staging",
        f"{service}.notes-staging.svc",
        f"{service}.notes-staging.svc.cluster.local",
    ]
    assert hosts.split(",") == expected, config_map.urn
    env = {"DATABASE_URL": "postgresql://x", "REDIS_URL": "redis://x", "ALLOWED_HOSTS": hosts}
    middleware = TrustedHostMiddleware(lambda *_: None, Settings.from_env(env).allowed_hosts)
    assert all(middleware._allowed(f"{host}:80") for host in expected)
    assert not middleware._allowed("notes-worker.notes-staging")  # the worker serves no traffic
    keys = json.loads(config_map.inputs["metadata"]["annotations"]["shipsafe.dev/config-keys"])
    assert "shipsafe:app.host" in keys["data.ALLOWED_HOSTS"]


def test_a_bring_your_own_app_may_go_without_allowed_hosts() -> None:
    recording = record("staging", **{"shipsafe:app": app_settings("staging", allowedHostsEnv=None)})
    data = by_name(recording, "notes-config-configmap").inputs["data"]
    assert "ALLOWED_HOSTS" not in data and "PORT" in data


# Policies ---------------------------------------------------------------------------------------------------------


def test_the_gateway_stack_passes_the_edge_policies(gateway_stack: Recording, analyze: Any) -> None:
    assert edge_findings(analyze(gateway_stack)) == set()


def test_a_route_no_traffic_policy_covers_is_unprotected(gateway_stack: Recording, analyze: Any) -> None:
    kept = [r for r in gateway_stack if r.name != TRAFFIC_POLICY]
    without_policy = dataclasses.replace(gateway_stack, resources=kept)
    assert ("edge-request-limits", ROUTE) in edge_findings(analyze(without_policy))


def one_shared_bucket(props: dict[str, Any]) -> None:
    """A limit for all clients together, not per client: one client can use it all up."""
    for rule in props["spec"]["rateLimit"]["local"]["rules"]:
        del rule["clientSelectors"]


@pytest.mark.parametrize(
    "change",
    [drop("spec.requestBuffer"), drop("spec.rateLimit"), at("spec.requestBuffer.limit", "0"), one_shared_bucket],
    ids=["no-body-limit", "no-rate-limit", "zero-body-limit", "one-shared-bucket"],
)
def test_a_traffic_policy_without_its_limits_is_caught(gateway_stack: Recording, analyze: Any, change: Any) -> None:
    report = analyze(edit(TRAFFIC_POLICY, change)(gateway_stack))
    assert ("edge-request-limits", TRAFFIC_POLICY) in edge_findings(report)


def test_a_route_without_matches_routes_everything_as_the_crd_default_does(
    gateway_stack: Recording, analyze: Any
) -> None:
    report = analyze(edit(ROUTE, drop("spec.rules.0.matches"))(gateway_stack))
    messages = [v.message for v in report.violations if v.policy == "edge-internal-paths"]
    assert any("'/' routes /metrics" in m for m in messages), report.violations


def test_a_second_route_to_the_probes_is_caught(gateway_stack: Recording, analyze: Any) -> None:
    route = by_name(gateway_stack, ROUTE).inputs
    probes = {**route, "metadata": {**route["metadata"], "name": "probes"}}
    probes["spec"] = {**route["spec"], "rules": [{"matches": [{"path": {"type": "Exact", "value": "/readyz"}}]}]}
    report = analyze(add_resource(new_resource(gateway_stack, HTTP_ROUTE_TYPE, "probes-route", probes))(gateway_stack))
    assert ("edge-internal-paths", "probes-route") in edge_findings(report)
    assert ("edge-request-limits", "probes-route") in edge_findings(report)


# API server model and prerequisites -------------------------------------------------------------------------------


def test_http_route_gets_the_crd_defaults() -> None:
    """kubernetes-sigs/gateway-api v1.6.1 `+kubebuilder:default` markers."""
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"parentRefs": [{"name": "public"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
    }
    spec = server_object(route, dry_run=True)["spec"]
    assert spec["parentRefs"] == [{"name": "public", "group": "gateway.networking.k8s.io", "kind": "Gateway"}]
    assert spec["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert spec["rules"][0]["backendRefs"] == [{"name": "web", "port": 80, "group": "", "kind": "Service", "weight": 1}]
    assert server_object({**route, "spec": {}}, dry_run=True)["spec"]["rules"] == [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    ]
    live = server_object(route, dry_run=False)
    assert live["status"]["parents"][0]["conditions"][0]["type"] == "Accepted"


GATEWAY_API_CRDS = {"httproutes.gateway.networking.k8s.io", "backendtrafficpolicies.gateway.envoyproxy.io"}


def gateway_config() -> dict[str, str]:
    config = cluster_shape("staging")
    return {**config, "shipsafe:app": json.dumps({**json.loads(config["shipsafe:app"]), "edge": GATEWAY_EDGE})}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (ClusterState(), "CustomResourceDefinition httproutes.gateway.networking.k8s.io is missing"),
        (ClusterState(crds={"podmonitors.monitoring.coreos.com", *GATEWAY_API_CRDS}), "Gateway edge/public"),
        (
            ClusterState(
                crds={"podmonitors.monitoring.coreos.com", *GATEWAY_API_CRDS},
                gateways={("edge", "public"): gateway("public", {"http": "HTTP"})},
            ),
            "no HTTPS listener named 'https'",
        ),
    ],
    ids=["no-crds", "no-gateway", "no-https-listener"],
)
def test_the_gateway_prerequisites(state: ClusterState, expected: str) -> None:
    problems = missing_prerequisites(requirements_for(gateway_config()), InProcessCluster(state))
    assert any(expected in p for p in problems), problems


def test_a_served_gateway_needs_no_ingress_class() -> None:
    state = ClusterState(
        crds={"podmonitors.monitoring.coreos.com", *GATEWAY_API_CRDS},
        gateways={("edge", "public"): gateway("public", {"https": "HTTPS"})},
        ingress_classes=set(),
    )
    assert missing_prerequisites(requirements_for(gateway_config()), InProcessCluster(state)) == []


def test_an_envoy_gateway_stack_passes_the_pack_in_every_phase(analyze: Any) -> None:
    # Envoy Gateway's BackendTrafficPolicy exists only as gateway.envoyproxy.io/v1alpha1: a CRD's own versioning,
    # which the stable-API rule must not refuse, or the Gateway option could never deploy.
    overrides = {"shipsafe:app": app_settings("prod", edge=GATEWAY_EDGE)}
    for phase in model_phases("prod", config_overrides=overrides):
        report = analyze(phase.recording)
        assert not report.mandatory_violations, (phase.phase, report.mandatory_violations)
