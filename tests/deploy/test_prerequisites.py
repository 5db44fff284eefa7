"""`deploy up` checks the cluster's prerequisites first, over real HTTP(S) against a fake API server.

Each gap has its message and exit code, and a failed check leaves the stack untouched (no preview, no update).
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.kubeconfig import cluster_access
from deploy.prerequisites import requirements_for
from tests.deploy.fake_apiserver import (
    CLUSTER_ISSUERS_PATH,
    INGRESS_CLASSES_PATH,
    PODMONITOR_PATH,
    STORAGE_CLASSES_PATH,
    ClusterState,
    fake_api_server,
    storage_class,
    write_kubeconfig,
)
from tests.deploy.memory_stack import MemoryStack, MemoryStacks, cluster_shape, image

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
    assert {path for path, _ in state.requests} == STAGING_CHECKS
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
    for service in ("shipsafe:postgres", "shipsafe:redis"):
        config = with_setting(config, service, mode="external", externalCidr="10.0.0.0/16")
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
    assert {path for path, _ in state.requests} == STAGING_CHECKS
    assert without_client_certificate.exit_code == ExitCode.CLUSTER_UNAVAILABLE


def test_an_untrusted_server_certificate_is_not_accepted(run_up, pki, tmp_path, monkeypatch):
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(pki / "server.crt", pki / "server.key")
    with fake_api_server(ClusterState(), tls=server_tls) as server:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", server)))  # no CA
        result = run_up()
    assert result.exit_code == ExitCode.CLUSTER_UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
