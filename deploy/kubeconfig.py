"""The cluster the user's `pulumi` would deploy to, read from the same kubeconfig, and a tiny read-only API client.

pulumi-kubernetes (`provider/pkg/provider/provider.go`, `Configure`) uses the stack config `kubernetes:kubeconfig`
(a path or the file's contents) when set, else client-go's default loading rules ($KUBECONFIG, a `:`-separated
list merged first-wins, or ~/.kube/config); `kubernetes:context` overrides the current context. Only static
credentials are supported (bearer token or token file, client certificate); exec plugins and auth providers run
arbitrary commands, so they are refused with a clear message instead of being imitated.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deploy.errors import ExitCode, ShipsafeError
from harness.local_files import LocalFileError, parse_yaml, read_text

KUBECONFIG_KEY = "kubernetes:kubeconfig"
CONTEXT_KEY = "kubernetes:context"
UNSUPPORTED_AUTH = ("exec", "auth-provider", "username", "password")


def _unavailable(message: str) -> ShipsafeError:
    return ShipsafeError(message, ExitCode.CLUSTER_UNAVAILABLE)


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API server is and how to authenticate to it."""

    context: str
    server: str
    verify: ssl.SSLContext | bool
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Kubeconfig:
    """Named entries merged from one or more files, the first file to set a name winning (client-go's rule)."""

    current_context: str | None = None
    clusters: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def merge(self, document: Mapping[str, Any], base_dir: Path) -> None:
        self.current_context = self.current_context or document.get("current-context") or None
        for section, target in (("clusters", self.clusters), ("users", self.users)):
            for entry in document.get(section) or []:
                key = section[:-1]  # "cluster" / "user"
                target.setdefault(entry["name"], (entry.get(key) or {}, base_dir))
        for entry in document.get("contexts") or []:
            self.contexts.setdefault(entry["name"], entry.get("context") or {})


def _default_paths() -> list[Path]:
    listed = os.environ.get("KUBECONFIG", "")
    if listed:
        return [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _load(stack_config: Mapping[str, str]) -> tuple[_Kubeconfig, str]:
    """The merged kubeconfig and a description of where it came from (for messages)."""
    kubeconfig = _Kubeconfig()
    path_or_contents = stack_config.get(KUBECONFIG_KEY, "")
    if path_or_contents:
        path = Path(path_or_contents).expanduser()
        if "\n" not in path_or_contents and path.is_file():
            kubeconfig.merge(_parse(_read(path), str(path)), path.parent)
            return kubeconfig, str(path)
        kubeconfig.merge(_parse(path_or_contents, KUBECONFIG_KEY), Path.cwd())
        return kubeconfig, f"stack config {KUBECONFIG_KEY}"
    paths = _default_paths()
    found = [path for path in paths if path.is_file()]
    if not found:
        where = ", ".join(map(str, paths))
        raise _unavailable(f"no kubeconfig at {where}: set KUBECONFIG or {KUBECONFIG_KEY} to reach the cluster")
    for path in found:
        kubeconfig.merge(_parse(_read(path), str(path)), path.parent)
    return kubeconfig, ":".join(map(str, found))


KUBECONFIG_BYTES = 16 * 1024 * 1024
"""Larger than any kubeconfig with embedded certificates for many clusters; the local-file bounds do the rest."""


def _read(path: Path) -> str:
    try:
        return read_text(path, KUBECONFIG_BYTES)
    except LocalFileError as error:
        raise _unavailable(f"kubeconfig {error}") from None


def _parse(text: str, source: str) -> Mapping[str, Any]:
    # Aliases, depth and value size bounded like every local file the tool reads (`harness/local_files.py`).
    try:
        document = parse_yaml(Path(source), text)[0] or {}
    except LocalFileError as error:
        raise _unavailable(f"kubeconfig {error}") from None
    if not isinstance(document, dict):
        raise _unavailable(f"kubeconfig {source} is not a mapping")
    return document


def _data_or_file(entry: Mapping[str, Any], key: str, base_dir: Path) -> bytes | None:
    """`<key>-data` (base64) or `<key>` (a path, relative to the kubeconfig file that names it)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base_dir / Path(entry[key]).expanduser()).read_bytes()
    return None


def _tls(cluster: Mapping[str, Any], user: Mapping[str, Any], cluster_dir: Path, user_dir: Path) -> ssl.SSLContext:
    ca = _data_or_file(cluster, "certificate-authority", cluster_dir)
    context = ssl.create_default_context(cadata=ca.decode() if ca else None)
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    certificate = _data_or_file(user, "client-certificate", user_dir)
    key = _data_or_file(user, "client-key", user_dir)
    if certificate and key:
        # ssl only loads a client certificate from files: write them for the call, readable by us alone.
        with tempfile.TemporaryDirectory() as scratch:
            cert_file, key_file = Path(scratch, "client.crt"), Path(scratch, "client.key")
            for path, content in ((cert_file, certificate), (key_file, key)):
                path.touch(mode=0o600)
                path.write_bytes(content)
            context.load_cert_chain(cert_file, key_file)
    return context


def cluster_access(stack_config: Mapping[str, str]) -> ClusterAccess:
    """Resolves the context pulumi-kubernetes would use and its static credentials."""
    kubeconfig, source = _load(stack_config)
    name = stack_config.get(CONTEXT_KEY) or kubeconfig.current_context
    if not name:
        raise _unavailable(f"kubeconfig {source} has no current-context; set one or set {CONTEXT_KEY}")
    if name not in kubeconfig.contexts:
        known = ", ".join(sorted(kubeconfig.contexts)) or "none"
        raise _unavailable(f"kubeconfig {source} has no context {name!r} (contexts: {known})")
    context = kubeconfig.contexts[name]
    cluster_name, user_name = context.get("cluster", ""), context.get("user", "")
    if cluster_name not in kubeconfig.clusters:
        raise _unavailable(f"context {name!r} names cluster {cluster_name!r}, which kubeconfig {source} lacks")
    cluster, cluster_dir = kubeconfig.clusters[cluster_name]
    user, user_dir = kubeconfig.users.get(user_name, ({}, cluster_dir))
    unsupported = [key for key in UNSUPPORTED_AUTH if user.get(key)]
    if unsupported:
        raise _unavailable(
            f"context {name!r} authenticates user {user_name!r} with {', '.join(unsupported)}; the prerequisite "
            "check supports only a bearer token (token, tokenFile) or a client certificate. Use such a "
            "kubeconfig, or pass --skip-prerequisites and check them yourself (docs/prerequisites.md)"
        )
    server = str(cluster.get("server") or "")
    if not server.startswith(("https://", "http://")):
        raise _unavailable(f"cluster {cluster_name!r} in kubeconfig {source} has no http(s):// server: {server!r}")
    try:
        token = user.get("token") or (
            (user_dir / Path(user["tokenFile"]).expanduser()).read_text().strip() if user.get("tokenFile") else None
        )
        verify = _tls(cluster, user, cluster_dir, user_dir) if server.startswith("https://") else False
    except (OSError, ssl.SSLError, ValueError) as error:
        raise _unavailable(f"cannot load the credentials of context {name!r} from {source}: {error}") from None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return ClusterAccess(context=name, server=server.rstrip("/"), verify=verify, headers=headers)


class KubernetesApi:
    """GETs JSON from the API server; `None` for 404, every other failure is CLUSTER_UNAVAILABLE."""

    def __init__(self, access: ClusterAccess, *, timeout_seconds: float = 10.0) -> None:
        self.access = access
        self._client = httpx.Client(
            base_url=access.server, verify=access.verify, headers=access.headers, timeout=timeout_seconds
        )

    def get(self, path: str) -> dict[str, Any] | None:
        where = f"{self.access.server}{path} (context {self.access.context})"
        try:
            response = self._client.get(path)
        except httpx.HTTPError as error:
            raise _unavailable(f"the Kubernetes API server did not answer GET {where}: {error}") from None
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise _unavailable(
                f"the Kubernetes API server refused GET {where} with HTTP {response.status_code}: the credentials "
                "must be allowed to read what docs/prerequisites.md lists (/version, CustomResourceDefinitions, "
                "StorageClasses, API discovery and the objects the stack creates)"
            )
        if response.status_code != 200:
            raise _unavailable(f"GET {where} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError:
            raise _unavailable(f"GET {where} did not return JSON") from None
        if not isinstance(body, dict):
            raise _unavailable(f"GET {where} returned {type(body).__name__}, not an object")
        return body


def open_cluster(stack_config: Mapping[str, str]) -> KubernetesApi:
    return KubernetesApi(cluster_access(stack_config))
