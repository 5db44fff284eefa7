"""`deploy up` checks the cluster's prerequisites first, over real HTTP(S) against a fake API server.

Each gap has its message and exit code, and a failed check leaves the stack untouched (no preview, no update).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from deploy.backend import StateResource
from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.existing_objects import PlannedObject, Registration, StackObjects, existing_objects, managed_objects
from deploy.kubeconfig import cluster_access
from deploy.prerequisites import requirements_for
from tests.deploy.fake_apiserver import (
    CLUSTER_ISSUERS_PATH,
    INGRESS_CLASSES_PATH,
    PODMONITOR_PATH,
    STORAGE_CLASSES_PATH,
    ClusterState,
    InProcessCluster,
    fake_api_server,
    k8s_object,
    prerequisite_paths,
    storage_class,
    write_kubeconfig,
)
from tests.deploy.memory_stack import MemoryStack, MemoryStacks, cluster_shape, image, sha

Runner = Callable[..., Result]
# Every GET the check sends for the committed staging settings.
STAGING_CHECKS = {"/version", PODMONITOR_PATH, STORAGE_CLASSES_PATH, f"{INGRESS_CLASSES_PATH}/nginx"}


def with_setting(config: dict[str, str], key: str, **changes: object) -> dict[str, str]:
    return {**config, key: json.dumps({**json.loads(config[key]), **changes})}


@pytest.fixture
def staging() -> MemoryStack:
    return MemoryStack("staging", config=cluster_shape("staging"))


@pytest.fixture
def run_up(project_dir: Path, staging: MemoryStack, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """`up staging` with the real kubeconfig reader and HTTP client; KUBECONFIG is set per test."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(project_dir))  # never the developer's ~/.kube/config
    context = DeployContext(
        open_stack=MemoryStacks(staging=staging), project_dir=project_dir, console=Console(width=200)
    )

    def run(*extra: str) -> Result:
        return CliRunner().invoke(cli, ["up", "staging", "--image-ref", image(1), *extra], obj=context)

    return run


def up_against(state: ClusterState, run_up: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Result:
    with fake_api_server(state) as server:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", server)))
        return run_up()


def test_a_cluster_with_every_prerequisite_is_deployed_to(run_up, staging, tmp_path, monkeypatch):
    state = ClusterState()
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert (
        "present: Kubernetes >= 1.30, CRD podmonitors.monitoring.coreos.com, a default StorageClass, IngressClass nginx"
        in result.output
    )
    assert [kind for kind, _ in staging.policy_runs] == ["preview", "up"]
    assert prerequisite_paths(state) == STAGING_CHECKS
    assert all(headers.get("Authorization") == "Bearer test-token" for _, headers in state.requests)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            ClusterState(crds=set()),
            "CustomResourceDefinition podmonitors.monitoring.coreos.com is missing (shipsafe:app.podMonitor is true)",
        ),
        (
            ClusterState(storage_classes=[storage_class("standard", default=False)]),
            'no default StorageClass (annotation storageclass.kubernetes.io/is-default-class="true"), and the '
            "volumes of shipsafe:postgres, shipsafe:redis name none",
        ),
        (ClusterState(git_version="v1.29.4-eks-1234"), "Kubernetes 1.29 is too old: at least 1.30 is needed"),
        (
            ClusterState(ingress_classes={"traefik"}),
            "IngressClass 'nginx' (shipsafe:app.ingressClassName) does not exist: install an ingress controller",
        ),
    ],
    ids=["missing-podmonitor-crd", "no-default-storageclass", "kubernetes-1.29", "missing-ingress-class"],
)
def test_each_missing_prerequisite_stops_up_before_the_preview(run_up, staging, tmp_path, monkeypatch, state, message):
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING, result.output
    assert "the cluster lacks prerequisites of this stack" in result.stderr
    assert message in result.stderr.replace("\n", " ")
    assert staging.policy_runs == [] and staging.records == []


def test_every_gap_is_listed_in_one_message(run_up, tmp_path, monkeypatch):
    state = ClusterState(git_version="v1.28.0", crds=set(), storage_classes=[])
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING
    assert result.stderr.count("\n  - ") == 3, result.stderr


def test_only_what_the_settings_use_is_required(run_up, staging, tmp_path, monkeypatch):
    """No PodMonitor: no CRD needed. Claims with an explicit class: that class, not a default one."""
    staging.config = with_setting(staging.config, "shipsafe:app", podMonitor=False)
    for service in ("shipsafe:postgres", "shipsafe:redis"):
        staging.config = with_setting(staging.config, service, storageClassName="fast-ssd")
    state = ClusterState(crds=set(), storage_classes=[storage_class("fast-ssd", default=False)])
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert PODMONITOR_PATH not in {path for path, _ in state.requests}
    assert "present: Kubernetes >= 1.30, StorageClass fast-ssd" in result.output


def test_a_stack_without_an_ingress_needs_no_ingress_class(run_up, staging, tmp_path, monkeypatch):
    workloads = json.loads(staging.config["shipsafe:workloads"])
    staging.config = with_setting(staging.config, "shipsafe:workloads", web={**workloads["web"], "expose": False})
    state = ClusterState(ingress_classes=set())
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert not [path for path, _ in state.requests if path.startswith(INGRESS_CLASSES_PATH)]


@pytest.mark.parametrize(
    ("crds", "issuers", "message"),
    [
        (
            {"podmonitors.monitoring.coreos.com"},
            {"letsencrypt"},
            "CustomResourceDefinition clusterissuers.cert-manager.io is missing (shipsafe:app.clusterIssuer is "
            "'letsencrypt'): install cert-manager",
        ),
        (
            {"podmonitors.monitoring.coreos.com", "clusterissuers.cert-manager.io"},
            {"self-signed"},
            "ClusterIssuer 'letsencrypt' (shipsafe:app.clusterIssuer) does not exist in the cluster",
        ),
    ],
    ids=["no-cert-manager", "no-such-issuer"],
)
def test_a_named_cluster_issuer_must_exist(run_up, staging, tmp_path, monkeypatch, crds, issuers, message):
    staging.config = with_setting(staging.config, "shipsafe:app", clusterIssuer="letsencrypt")
    result = up_against(ClusterState(crds=crds, cluster_issuers=issuers), run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING, result.output
    assert message in result.stderr.replace("\n", " ")
    assert staging.policy_runs == []


def test_an_installed_cluster_issuer_is_reported_present(run_up, staging, tmp_path, monkeypatch):
    staging.config = with_setting(staging.config, "shipsafe:app", clusterIssuer="letsencrypt")
    crds = {"podmonitors.monitoring.coreos.com", "clusterissuers.cert-manager.io"}
    state = ClusterState(crds=crds, cluster_issuers={"letsencrypt"})
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "IngressClass nginx, ClusterIssuer letsencrypt" in result.output
    assert f"{CLUSTER_ISSUERS_PATH}/letsencrypt" in {path for path, _ in state.requests}


def test_an_explicit_storage_class_must_exist(run_up, staging, tmp_path, monkeypatch):
    staging.config = with_setting(staging.config, "shipsafe:postgres", storageClassName="fast-ssd")
    result = up_against(ClusterState(), run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING
    assert "StorageClass 'fast-ssd' (shipsafe:postgres.storageClassName) does not exist" in result.stderr


def test_external_backing_services_need_no_storage(staging):
    config = staging.config
    for service in ("shipsafe:postgres", "shipsafe:redis"):  # replaced whole: external takes no in-cluster keys
        version = json.loads(config[service])["version"]
        config = {
            **config,
            service: json.dumps({"mode": "external", "version": version, "externalCidr": "10.0.0.0/16"}),
        }
    assert requirements_for(config).default_storage_class_for == ()
    assert requirements_for(staging.config).default_storage_class_for == ("shipsafe:postgres", "shipsafe:redis")


def test_an_unreachable_server_is_its_own_exit_code(run_up, staging, tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")))
    result = run_up()
    assert result.exit_code == ExitCode.CLUSTER_UNAVAILABLE, result.output
    assert f"the Kubernetes API server did not answer GET http://127.0.0.1:{port}/version" in result.stderr
    assert staging.policy_runs == []


def test_forbidden_is_reported_as_unchecked_not_as_missing(run_up, tmp_path, monkeypatch):
    result = up_against(ClusterState(forced_status=403), run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.CLUSTER_UNAVAILABLE
    assert "refused GET" in result.stderr and "HTTP 403" in result.stderr


def test_exec_plugins_are_refused_with_a_way_out(run_up, staging, tmp_path, monkeypatch):
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws"}}
    monkeypatch.setenv(
        "KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1", user=exec_user))
    )
    result = run_up()
    assert result.exit_code == ExitCode.CLUSTER_UNAVAILABLE
    assert "authenticates user 'kind-e2e' with exec" in result.stderr
    assert "--skip-prerequisites" in result.stderr
    skipped = run_up("--skip-prerequisites")
    assert skipped.exit_code == 0, skipped.output
    assert "prerequisites of staging not checked (--skip-prerequisites)" in skipped.output
    assert [kind for kind, _ in staging.policy_runs] == ["preview", "up"]


def test_no_kubeconfig_says_where_it_looked(run_up, project_dir):
    result = run_up()
    assert result.exit_code == ExitCode.CLUSTER_UNAVAILABLE
    assert f"no kubeconfig at {project_dir / '.kube' / 'config'}" in result.stderr


def test_the_stack_config_can_name_the_context(tmp_path, monkeypatch):
    path = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert cluster_access({}).context == "kind-e2e"
    with pytest.raises(ShipsafeError, match="has no context 'prod-cluster'") as raised:
        cluster_access({"kubernetes:context": "prod-cluster"})
    assert raised.value.exit_code is ExitCode.CLUSTER_UNAVAILABLE


# ── TLS: CA data and a client certificate, as kind writes them ─────────────────────────────────────────────


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make test certificates")
    root = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=root)  # fmt: skip
    (root / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=kubernetes-admin/O=system:masters")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=root)  # fmt: skip
        extension = ["-extfile", "san.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "1", "-out", f"{name}.crt", *extension, cwd=root)  # fmt: skip
    return root


def _data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_ca_data_and_client_certificate_authenticate(run_up, pki, tmp_path, monkeypatch):
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(pki / "server.crt", pki / "server.key")
    server_tls.load_verify_locations(pki / "ca.crt")
    server_tls.verify_mode = ssl.CERT_REQUIRED  # like the API server: no client certificate, no answer
    state = ClusterState()
    user = {"client-certificate-data": _data(pki / "client.crt"), "client-key-data": _data(pki / "client.key")}
    with fake_api_server(state, tls=server_tls) as server:
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, server, user=user, cluster={"certificate-authority-data": _data(pki / "ca.crt")})
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        assert run_up().exit_code == 0
        write_kubeconfig(kubeconfig, server, user={}, cluster={"certificate-authority-data": _data(pki / "ca.crt")})
        without_client_certificate = run_up()
    assert prerequisite_paths(state) == STAGING_CHECKS
    assert without_client_certificate.exit_code == ExitCode.CLUSTER_UNAVAILABLE


def test_an_untrusted_server_certificate_is_not_accepted(run_up, pki, tmp_path, monkeypatch):
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(pki / "server.crt", pki / "server.key")
    with fake_api_server(ClusterState(), tls=server_tls) as server:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", server)))  # no CA
        result = run_up()
    assert result.exit_code == ExitCode.CLUSTER_UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr


# ── objects the stack would create that exist outside its state ────────────────────────────────────────────


STAGING_NAMESPACE = "notes-staging"
URN = "urn:pulumi:staging::shipsafe::"


def problems_of(result: Result) -> list[str]:
    """The listed problems, one per line (the error is printed without wrapping)."""
    return result.stderr.split("\n  - ")[1:]


def test_a_namespace_made_by_hand_is_refused_naming_both_fixes(run_up, staging, project_dir, tmp_path, monkeypatch):
    state = ClusterState(objects=[k8s_object("v1", "Namespace", STAGING_NAMESPACE)])
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING, result.output
    import_file = project_dir / "out" / "import" / "staging.json"
    [problem] = problems_of(result)
    assert problem.strip() == (
        "Namespace notes-staging already exists in the cluster but is not in the state of stack staging: `up` would "
        'fail to create it ("already exists"). Adopt it with '
        f"`pulumi import --stack staging --file {import_file}` (written now: every object listed here, with the "
        "components the state lacks), or delete it with `kubectl delete namespaces notes-staging` (this deletes "
        "everything in the namespace)"
    )
    component = f"{URN}shipsafe:components:AppNamespace::notes"
    assert json.loads(import_file.read_text()) == {
        "nameTable": {},
        "resources": [
            {"type": "shipsafe:components:AppNamespace", "name": component, "logicalName": "notes", "component": True},
            {
                "type": "kubernetes:core/v1:Namespace",
                "name": f"{URN}shipsafe:components:AppNamespace$kubernetes:core/v1:Namespace::notes-namespace",
                "logicalName": "notes-namespace",
                "id": "notes-staging",
                "parent": component,
            },
        ],
    }
    assert "/api/v1/namespaces/notes-staging" in {path for path, _ in state.requests}
    assert staging.policy_runs == [] and staging.records == []


def test_with_its_component_in_the_state_one_import_command_adopts_it(run_up, staging, tmp_path, monkeypatch):
    """The form pulumi documents (`pulumi import [type] [name] [id] --parent 'parent=<urn>'`, `import.go`)."""
    component = f"{URN}shipsafe:components:AppNamespace::notes"
    staging.state = [StateResource(component, "shipsafe:components:AppNamespace", "")]
    state = ClusterState(objects=[k8s_object("v1", "Namespace", STAGING_NAMESPACE)])
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING, result.output
    [problem] = problems_of(result)
    assert (
        "Adopt it with `pulumi import --stack staging kubernetes:core/v1:Namespace notes-namespace notes-staging "
        f"--parent 'parent={component}'`, or delete it with `kubectl delete namespaces notes-staging`"
    ) in problem


def test_what_a_half_deleted_install_left_behind_is_named_object_by_object(
    run_up, staging, project_dir, tmp_path, monkeypatch
):
    leftovers = [
        k8s_object("v1", "Secret", "notes-redis-auth", STAGING_NAMESPACE),
        k8s_object("v1", "ConfigMap", "notes-config", STAGING_NAMESPACE),
        k8s_object("monitoring.coreos.com/v1", "PodMonitor", "notes-web", STAGING_NAMESPACE),
    ]
    result = up_against(ClusterState(objects=leftovers), run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING, result.output
    problems = problems_of(result)
    assert len(problems) == 3, result.stderr
    expected = [
        ("Secret notes-staging/notes-redis-auth", "kubectl delete secrets notes-redis-auth --namespace notes-staging"),
        ("ConfigMap notes-staging/notes-config", "kubectl delete configmaps notes-config --namespace notes-staging"),
        (
            "PodMonitor notes-staging/notes-web",
            "kubectl delete podmonitors.monitoring.coreos.com notes-web --namespace notes-staging",
        ),
    ]
    for (named, delete), problem in zip(expected, problems, strict=True):
        assert problem.startswith(f"{named} already exists in the cluster but is not in the state"), problem
        assert f"`{delete}`" in problem and "pulumi import --stack staging --file" in problem
    adopted = json.loads((project_dir / "out" / "import" / "staging.json").read_text())["resources"]
    assert [(r["logicalName"], r.get("id")) for r in adopted] == [
        ("notes-redis", None),
        ("notes-redis-auth", "notes-staging/notes-redis-auth"),
        ("notes-config", None),
        ("notes-config-configmap", "notes-staging/notes-config"),
        ("notes-web", None),
        ("notes-web-podmonitor", "notes-staging/notes-web"),
    ]
    assert staging.policy_runs == [] and staging.records == []


def test_objects_already_in_the_state_are_a_normal_update(run_up, staging, project_dir, tmp_path, monkeypatch):
    managed = [
        ("kubernetes:core/v1:Namespace", "notes-staging"),
        ("kubernetes:core/v1:Secret", "notes-staging/notes-redis-auth"),
        ("kubernetes:monitoring.coreos.com/v1:PodMonitor", "notes-staging/notes-web"),
    ]
    staging.state = [StateResource(f"{URN}{type_}::{id_}", type_, id_) for type_, id_ in managed]
    objects = [
        k8s_object("v1", "Namespace", STAGING_NAMESPACE),
        k8s_object("v1", "Secret", "notes-redis-auth", STAGING_NAMESPACE),
        k8s_object("monitoring.coreos.com/v1", "PodMonitor", "notes-web", STAGING_NAMESPACE),
    ]
    state = ClusterState(objects=objects)
    stale_import_file = project_dir / "out" / "import" / "staging.json"
    stale_import_file.parent.mkdir(parents=True)
    stale_import_file.write_text('{"resources": []}')
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert not stale_import_file.exists()
    assert re.search(r"none of the \d+ objects to create exists outside the state", result.output)
    paths = {path for path, _ in state.requests}
    assert "/api/v1/namespaces/notes-staging" not in paths  # what the state holds is not looked up
    assert "/api/v1/namespaces/notes-staging/configmaps/notes-config" in paths
    assert [kind for kind, _ in staging.policy_runs] == ["preview", "up"]


def test_an_object_pending_deletion_in_the_state_does_not_count_as_managed(run_up, staging, tmp_path, monkeypatch):
    staging.state = [StateResource(f"{URN}ns", "kubernetes:core/v1:Namespace", "notes-staging", pending_delete=True)]
    state = ClusterState(objects=[k8s_object("v1", "Namespace", STAGING_NAMESPACE)])
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING, result.output


def test_the_release_the_command_names_is_the_one_rendered(run_up, staging, tmp_path, monkeypatch):
    """`up --image-ref` sets the release keys before `pulumi up`: its migration Job carries that SHA."""
    job = f"notes-migrate-{sha(1)[:12]}"
    state = ClusterState(objects=[k8s_object("batch/v1", "Job", job, STAGING_NAMESPACE)])
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING, result.output
    [problem] = problems_of(result)
    assert problem.startswith(f"Job notes-staging/{job} already exists in the cluster")
    assert f"`kubectl delete jobs.batch {job} --namespace notes-staging`" in problem


def test_a_provider_that_upserts_adopts_existing_objects(run_up, staging, tmp_path, monkeypatch):
    staging.config = {**staging.config, "kubernetes:upsertExistingObjects": "true"}
    state = ClusterState(objects=[k8s_object("v1", "Namespace", STAGING_NAMESPACE)])
    result = up_against(state, run_up, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "objects to create not looked up (kubernetes:upsertExistingObjects" in result.output
    assert "/api/v1/namespaces/notes-staging" not in {path for path, _ in state.requests}


def _planned(api_version: str, kind: str, name: str, namespace: str = "") -> PlannedObject:
    return PlannedObject(api_version, kind, namespace, name, Registration(f"{URN}{kind}::{name}", kind, name))


def test_kinds_the_cluster_does_not_serve_and_objects_without_a_namespace_are_stated(tmp_path):
    objects = StackObjects(
        "staging",
        (
            _planned("example.com/v1", "Widget", "w", STAGING_NAMESPACE),  # a CRD not installed
            _planned("v1", "ConfigMap", "no-namespace"),
            _planned("v1", "Namespace", STAGING_NAMESPACE),
        ),
        managed=frozenset(),
        state_urns=frozenset(),
        import_file=tmp_path / "staging.json",
    )
    found = existing_objects(objects, InProcessCluster())
    assert found.problems == []
    assert found.not_served == {"Widget (example.com/v1)"}
    assert found.unchecked == [
        "ConfigMap no-namespace: names no namespace, so the provider's default namespace decides"
    ]
    assert not (tmp_path / "staging.json").exists()


def test_the_state_is_read_by_type_token_and_id():
    resources = [
        StateResource("urn:a", "kubernetes:core/v1:Namespace", "notes-staging"),
        StateResource("urn:b", "kubernetes:apps/v1:Deployment", "notes-staging/notes-web"),
        StateResource("urn:c", "kubernetes:core/v1:Secret", "notes-staging/gone", pending_delete=True),
        StateResource("urn:d", "kubernetes:core/v1:Namespace", "kube-system", external=True),
        StateResource("urn:e", "random:index/randomPassword:RandomPassword", "x"),
        StateResource("urn:f", "shipsafe:components:AppNamespace", ""),
    ]
    assert managed_objects(resources) == {
        ("", "Namespace", "", "notes-staging"),
        ("apps", "Deployment", "notes-staging", "notes-web"),
    }
