"""Postgres, Redis and the registry: generated credentials, secrets only by reference, swappable by config."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from harness.recording import Recording
from harness.stack_config import PLACEHOLDER_SECRET, REPO_ROOT
from tests.conftest import record
from tests.support.stack_queries import DEPLOYMENT, JOB, SECRET, STATEFUL_SET, containers, env_var, only, pod_spec

SECRET_LOOKING = re.compile(r"(?i)pass|secret|token|api_?key|private|credential|dsn|_url$")
BACKING = {"postgres": ("shipsafe:postgres", "notes-database"), "redis": ("shipsafe:redis", "notes-redis")}


def _stack_config(stack: str) -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]


def test_app_containers_read_connections_only_from_secret_references(recording: Recording) -> None:
    for owner in (*recording.of_type(DEPLOYMENT), only(recording, JOB)):
        container = containers(owner)[0]
        for variable, secret in (("DATABASE_URL", "notes-database"), ("REDIS_URL", "notes-redis")):
            assert env_var(container, variable)["valueFrom"] == {"secretKeyRef": {"name": secret, "key": "url"}}
        assert container["envFrom"] == [{"configMapRef": {"name": "notes-config"}}]


def test_no_container_has_a_literal_secret_looking_value(recording: Recording) -> None:
    for owner in recording:
        if owner.type in (DEPLOYMENT, JOB, STATEFUL_SET):
            for container in containers(owner):
                for variable in container.get("env", []):
                    # *_FILE variables point at a mounted secret file, which is the preferred way.
                    if SECRET_LOOKING.search(variable["name"]) and not variable["name"].endswith("_FILE"):
                        assert "value" not in variable, f"{owner.urn}: {variable['name']} is a literal"


def test_configmap_holds_only_plain_settings(recording: Recording) -> None:
    data = only(recording, "kubernetes:core/v1:ConfigMap").inputs["data"]
    assert set(data) == {"PORT", "LOG_LEVEL", "SHUTDOWN_TIMEOUT_SECONDS", "ALLOWED_HOSTS"}
    assert data["PORT"] == "3002"
    assert int(data["SHUTDOWN_TIMEOUT_SECONDS"]) == 30 - 5 - 5, "must finish draining before SIGKILL"


def test_each_pod_template_carries_its_own_version(recording: Recording) -> None:
    # Not in the shared ConfigMap: an old pod restarting mid-rollout must keep reporting its own version.
    for owner in (*recording.of_type(DEPLOYMENT), only(recording, JOB)):
        assert env_var(containers(owner)[0], "APP_VERSION")["value"] == recording.stack_outputs["gitSha"]


def test_every_secret_value_is_a_pulumi_secret_from_a_generator_or_secret_config(
    recording: Recording,
) -> None:
    passwords = {p.name: p for p in recording.of_type("random:index/randomPassword:RandomPassword")}
    assert set(passwords) == {"notes-postgres-password", "notes-redis-password"}
    for secret in recording.of_type(SECRET):
        for key in secret.inputs["stringData"]:
            assert f"stringData.{key}" in secret.secret_paths or "stringData" in secret.secret_paths, (
                f"{secret.urn}: {key} is not marked secret"
            )
    url = recording.named("notes-postgres-url")
    generated = passwords["notes-postgres-password"].outputs["result"]
    assert url.inputs["stringData"]["url"] == (
        f"postgresql://app:{generated}@notes-postgres.{recording.stack_outputs['namespace']}.svc.cluster.local:5432/app"
    )
    assert url.dependencies, "the URL secret must wait for the password it embeds"


def test_no_secret_is_written_in_a_committed_stack_file() -> None:
    for path in REPO_ROOT.glob("Pulumi.*.yaml"):
        text = path.read_text()
        assert not re.search(
            r"(?i)(password|token|secret)\w*:\s*(?!\s*$)[^\n{]*\S",
            text.split("config:", 1)[1].replace("secure:", ""),
        ), f"{path.name} holds a literal secret"
        assert "secure:" not in text, f"{path.name}: commit no ciphertext either; set secrets per machine"


def test_backing_service_versions_are_pinned_and_equal_in_every_stack() -> None:
    staging, prod = _stack_config("staging"), _stack_config("prod")
    for key, _ in BACKING.values():
        assert isinstance(staging[key], dict) and isinstance(prod[key], dict)
        assert (staging[key]["version"], staging[key]["image"]) == (
            prod[key]["version"],
            prod[key]["image"],
        ), key


def test_statefulsets_run_the_pinned_images_with_protected_data(recording: Recording) -> None:
    config = _stack_config(recording.stack)
    for role, (key, _) in BACKING.items():
        stateful_set = recording.named(f"notes-{role}-statefulset")
        settings = config[key]
        assert isinstance(settings, dict)
        assert containers(stateful_set)[0]["image"] == settings["image"]
        spec = stateful_set.inputs["spec"]
        assert spec["persistentVolumeClaimRetentionPolicy"] == {
            "whenDeleted": "Retain",
            "whenScaled": "Retain",
        }
        assert spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == settings["storageSize"]
        assert stateful_set.protect and recording.named(f"notes-{role}-password").protect
        assert recording.named(f"notes-{role}-auth").protect
        headless = recording.named(f"notes-{role}-service").inputs["spec"]
        assert headless["clusterIP"] == "None" and spec["serviceName"] == f"notes-{role}"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert probe in containers(stateful_set)[0], f"{stateful_set.urn} lacks {probe}"
        # A mirrored image (`shipsafe mirror`) is pulled from the project registry, behind its credentials.
        pull_secret = recording.named("notes-registry-pull-secret").inputs["metadata"]["name"]
        assert pod_spec(stateful_set)["imagePullSecrets"] == [{"name": pull_secret}], stateful_set.urn


def test_postgres_reads_its_password_from_a_file_not_an_env_value(recording: Recording) -> None:
    postgres = containers(recording.named("notes-postgres-statefulset"))[0]
    assert env_var(postgres, "POSTGRES_PASSWORD_FILE")["value"] == "/run/secrets/auth/password"
    assert all(e["name"] != "POSTGRES_PASSWORD" for e in postgres["env"])


def test_external_backing_services_swap_in_through_config_only() -> None:
    external = {
        "mode": "external",
        "version": "15.18",
        "externalCidr": "10.20.0.0/16",
    }
    stack = record("staging", **{"shipsafe:postgres": json.dumps(external)})
    assert "notes-postgres-statefulset" not in {r.name for r in stack}
    assert "shipsafe:postgresUrl" in stack.placeholder_secrets
    url = stack.named("notes-postgres-url")
    assert url.inputs["stringData"]["url"] == PLACEHOLDER_SECRET and url.secret_paths
    egress = stack.named("notes-network-postgres-egress").inputs["spec"]["egress"][0]
    assert egress["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    app = containers(stack.named("notes-web-deployment"))[0]
    assert env_var(app, "DATABASE_URL")["valueFrom"]["secretKeyRef"]["name"] == "notes-database"


def test_registry_pull_secret_is_a_dockerconfigjson_in_the_namespace(recording: Recording) -> None:
    pull = recording.named("notes-registry-pull-secret")
    assert pull.inputs["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(pull.inputs["stringData"][".dockerconfigjson"])
    assert config["auths"]["registry.example.com"]["username"] == "shipsafe-ci"
    assert pull.secret_paths
    for owner in (*recording.of_type(DEPLOYMENT), only(recording, JOB)):
        assert pod_spec(owner)["imagePullSecrets"] == [{"name": "notes-registry"}]


def test_in_cluster_registry_runs_with_storage_and_generated_htpasswd() -> None:
    registry = {
        "mode": "in-cluster",
        "server": "registry.notes.internal",
        "repository": "shipsafe/notes",
        "username": "shipsafe",
    }
    stack = record("staging", **{"shipsafe:registry": json.dumps(registry)})
    assert "shipsafe:registryPassword" not in stack.placeholder_secrets
    stateful_set = stack.named("notes-registry-statefulset")
    assert containers(stateful_set)[0]["image"] == "docker.io/library/registry:2.8.3"
    assert stateful_set.inputs["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    password = stack.named("notes-registry-password")
    htpasswd = stack.named("notes-registry-htpasswd").inputs["stringData"]["htpasswd"]
    assert htpasswd == f"shipsafe:{password.outputs['bcryptHash']}"
    assert stack.stack_outputs["imageRef"].startswith("registry.notes.internal/shipsafe/notes:")
    # Builder and nodes reach it through a TLS Ingress; the push waits for it to serve.
    ingress = stack.named("notes-registry-ingress").inputs
    assert ingress["spec"]["rules"][0]["host"] == "registry.notes.internal"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    assert stateful_set.urn in stack.named("notes-image-build").dependencies
    policy = stack.named("notes-network-registry-ingress").inputs["spec"]["ingress"][0]
    assert policy["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]


def test_tag_pinned_backing_images_are_re_resolved_on_every_pull(recording: Recording) -> None:
    for role in BACKING:
        container = containers(recording.named(f"notes-{role}-statefulset"))[0]
        assert "@sha256:" not in container["image"]
        assert container["imagePullPolicy"] == "Always"


def test_postgres_allows_the_connections_the_app_pods_may_open(recording: Recording) -> None:
    postgres = containers(recording.named("notes-postgres-statefulset"))[0]
    assert postgres["args"] == ["-c", "max_connections=200"]
