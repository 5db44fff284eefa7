"""Kubernetes objects of a recording as YAML manifests (what `pulumi up` would send to the API server), like
`helm template`: the same inputs give the same bytes, objects come in the order a deploy applies them, and Secrets
hold placeholders that are valid for their type but never the real values."""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.local_files import read_text
from harness.recording import MODELLED_DIGEST_PREFIX, RecordedResource, Recording

SECRET_PLACEHOLDER = "PLACEHOLDER, not the real value: a Pulumi secret, set at deploy time"
_INDEX = re.compile(r"\[(\d+)\]")
_SECRET = object()
"""Marks a secret leaf until it gets the placeholder its place allows."""

# helm/helm `pkg/release/v1/util/kind_sorter.go` `InstallOrder` (main at e9b85e4, Helm v4), copied verbatim.
HELM_INSTALL_ORDER = (
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
)
# Our deploy differs from Helm's (`components/program.py`, `components/timeline.py`): the migration Job `depends_on` the
# backing services' StatefulSets and every Deployment `depends_on` the Job, so both come before Deployments and HPAs.
_BEFORE_DEPLOYMENTS = ("StatefulSet", "Job")


def _deploy_order() -> tuple[str, ...]:
    rest = [kind for kind in HELM_INSTALL_ORDER if kind not in _BEFORE_DEPLOYMENTS]
    at = rest.index("Deployment")
    return (*rest[:at], *_BEFORE_DEPLOYMENTS, *rest[at:])


APPLY_ORDER = _deploy_order()
"""Kinds in the order a deploy applies them; kinds not listed (custom resources such as PodMonitor) come last."""
_RANK = {kind: rank for rank, kind in enumerate(APPLY_ORDER)}

# kubernetes/kubernetes `pkg/apis/core/validation/validation.go` `ValidateSecret`: these types must hold a JSON
# object under their key (validated after `stringData` is merged into `data`); the other types only require keys
# to be present (kept here) and `ssh-privatekey` non-empty.
_JSON_OBJECT_KEYS = {"kubernetes.io/dockerconfigjson": ".dockerconfigjson", "kubernetes.io/dockercfg": ".dockercfg"}

RENDER_NOTES = (
    "# Rendered offline by shipsafe, in the order a deploy applies the objects.",
    "# Secret values are placeholders, never the real values.",
    f"# Image digests beginning {MODELLED_DIGEST_PREFIX} are modelled offline: no such image exists.",
)


def is_kubernetes(resource: RecordedResource) -> bool:
    return resource.custom and resource.type.startswith("kubernetes:")


def _marked_secret(value: Any) -> Any:
    # Keep the shape (a secret map stays a map) so the manifest still validates.
    if isinstance(value, dict):
        return {k: _marked_secret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_marked_secret(v) for v in value]
    return _SECRET


def _mark(document: dict[str, Any], path: str) -> None:
    parts = [p for p in _INDEX.sub(r".\1", path).split(".") if p]
    node: Any = document
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.get(part)
        if node is None:
            return
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = _marked_secret(node[int(last)])
    elif isinstance(node, dict) and last in node:
        node[last] = _marked_secret(node[last])


def _secret_value_placeholder(secret_type: str | None, key: str) -> str:
    if _JSON_OBJECT_KEYS.get(secret_type or "") == key:
        return json.dumps({"auths": {}, "placeholder": SECRET_PLACEHOLDER})
    return SECRET_PLACEHOLDER


def _fill_secret_values(document: dict[str, Any]) -> None:
    for field in ("stringData", "data"):
        values = document.get(field)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if value is _SECRET:
                text = _secret_value_placeholder(document.get("type"), key)
                values[key] = base64.b64encode(text.encode()).decode() if field == "data" else text


def _placeholders(value: Any) -> Any:
    if value is _SECRET:
        return SECRET_PLACEHOLDER
    if isinstance(value, dict):
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    return value


def whole_numbers(value: Any) -> Any:
    # Protobuf Structs carry every number as a float; Kubernetes schemas want integers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def _sorted_keys(value: Any) -> Any:
    # A Struct's keys arrive in protobuf map order (a hash order), not the program's: sort them, as kubectl prints.
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def to_manifest(resource: RecordedResource) -> dict[str, Any]:
    document = copy.deepcopy(resource.inputs)
    for path in resource.secret_paths:
        _mark(document, path)
    if document.get("kind") == "Secret":
        _fill_secret_values(document)
    document = _sorted_keys(whole_numbers(_placeholders(document)))
    head = {key: document.pop(key) for key in ("apiVersion", "kind", "metadata") if key in document}
    return {**head, **document}


def apply_order_key(document: dict[str, Any]) -> tuple[int, str, str, str, str]:
    """Sorts like Helm's `lessByKind` (known kinds by `APPLY_ORDER`, unknown kinds last and alphabetically), then
    by name as the issue asks (Helm keeps template order there), then namespace and apiVersion for a total order."""
    metadata = document.get("metadata") or {}
    kind = str(document.get("kind", ""))
    rank = _RANK.get(kind, len(APPLY_ORDER))
    return (
        rank,
        kind,
        str(metadata.get("name", "")),
        str(metadata.get("namespace", "")),
        str(document.get("apiVersion", "")),
    )


def documents_in_apply_order(recording: Recording) -> list[dict[str, Any]]:
    """The Kubernetes objects in apply order; independent of registration order, which follows the SDK's thread
    pool (pulumi `runtime/resource.py` sends each RegisterResource through `run_in_executor`)."""
    return sorted((to_manifest(r) for r in recording if is_kubernetes(r)), key=apply_order_key)


def modelled_values_note(recording: Recording) -> str:
    """One line for the preview: which values in its output the offline run made up."""
    modelled = ["Secret values in the manifests are placeholders"]
    if any(MODELLED_DIGEST_PREFIX in json.dumps(r.inputs) for r in recording if is_kubernetes(r)):
        modelled.insert(0, f"image digests beginning {MODELLED_DIGEST_PREFIX} are modelled (no image was built)")
    return "note: " + "; ".join(modelled)


# libyaml's emitter, when PyYAML was built with it (its wheels are): five times faster at 200 workloads, the same
# YAML always, and the same bytes as the pure-Python SafeDumper for both stacks (tests/deploy/test_render.py); it
# may fold long non-ASCII strings elsewhere, which only `deploy.offline.diff` reads, after parsing.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(documents: Sequence[dict[str, Any]], dumper: type[yaml.SafeDumper] = _DUMPER) -> str:
    return yaml.dump_all(documents, Dumper=dumper, sort_keys=False, width=120)


def render(recording: Recording) -> str:
    """One YAML stream, as `helm template` prints it."""
    return "\n".join(RENDER_NOTES) + "\n" + _dump(documents_in_apply_order(recording))


_RENDERED_FILE = re.compile(r"^\d+-[a-z0-9]+-[a-z0-9.-]+\.yaml$")
RENDER_LIST = ".shipsafe-render"
"""In a `render --output-dir` directory: the files the last render wrote, one name a line. Only these are ever
removed or overwritten by the next render, and a saved render is read from them (`rendered_files`)."""


class RenderDirectoryError(Exception):
    """The directory holds a file of the render's name that no render wrote: it is not overwritten."""


def rendered_files(directory: Path) -> list[Path] | None:
    """The files the last render wrote into `directory` (as RENDER_LIST names them), or None without a list."""
    listed = directory / RENDER_LIST
    if not listed.is_file():
        return None
    names = read_text(listed).splitlines()
    return [directory / name for name in names if _RENDERED_FILE.match(name)]


def render_to_directory(recording: Recording, directory: Path) -> list[Path]:
    """One file per object, `NN-kind-name.yaml` in apply order, like `helm template --output-dir`. The earlier
    render's files are removed first (a stale file would read as an object still deployed); a file no render wrote
    is never removed or overwritten (RenderDirectoryError when the render would need its name)."""
    documents = documents_in_apply_order(recording)
    width = max(2, len(str(len(documents) - 1)))
    names = [f"{i:0{width}d}-{d['kind'].lower()}-{d['metadata']['name']}.yaml" for i, d in enumerate(documents)]
    directory.mkdir(parents=True, exist_ok=True)
    earlier = {path.name for path in rendered_files(directory) or []}
    taken = [name for name in names if name not in earlier and (directory / name).exists()]
    if taken:
        raise RenderDirectoryError(
            f"{directory}: the render would overwrite {', '.join(taken[:3])}{' ...' if len(taken) > 3 else ''}, "
            f"which no render wrote ({RENDER_LIST} does not list it); left alone: render into another directory"
        )
    listed = directory / RENDER_LIST
    listed.write_text("".join(f"{name}\n" for name in sorted(earlier | set(names))))  # holds even if cut short
    for stale in sorted(earlier - set(names)):
        if (directory / stale).is_file():
            (directory / stale).unlink()
    written = []
    for name, document in zip(names, documents, strict=True):
        (directory / name).write_text("\n".join(RENDER_NOTES) + "\n" + _dump([document]))
        written.append(directory / name)
    listed.write_text("".join(f"{name}\n" for name in names))
    return written
