"""What a provider's `Check` returns for a resource's inputs: what resource policies (`Analyze`) are sent.

The engine runs `Check` on every registration and hands the analyzers its output, not the program's raw inputs
(pulumi/pulumi `pkg/resource/deploy/step_generator.go`: `Check` then `AnalyzeResources` on the checked inputs).

pulumi-kubernetes (`provider/pkg/provider/provider.go` `Check` -> `normalizeInputs`):
- while any value is unknown (`util.go` `hasComputedValue`) the inputs are not normalised at all;
- otherwise a built-in kind takes a typed round trip (`clients/unstructured.go` `Normalize`), pruned back to the
  keys the inputs had (`pruneLiveState`); a Secret's `stringData` becomes base64 `data` (`normalizeSecret`:
  stringData overwrites data) and its `data` is re-encoded canonically;
- the read-only metadata (`creationTimestamp`, `deletionGracePeriodSeconds`, `deletionTimestamp`, `generation`,
  `managedFields`, `resourceVersion`, `uid`) is always removed;
- `annotateSecrets`: a Secret's whole `data` and `stringData` are secret; elsewhere a key whose input value held
  a secret is secret as a whole once the walk leaves nested objects (a list holding one secret is all secret).

pulumi-docker `Image` (`provider/provider.go` `Check`): `buildOnPreview` is filled in (false when unset), and a
known `build.context`/`build.dockerfile` get their defaults (`.` and `<context>/Dockerfile`,
`image.go` `marshalBuildAndApplyDefaults`).

What the typed round trip also does and this model leaves out is listed in `LEFT_OUT` (docs/offline-preview.md).
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from typing import Any

from harness.apiserver import is_built_in
from harness.manifests import is_kubernetes
from harness.recording import DOCKER_IMAGE, RecordedResource, contains_unknown

READ_ONLY_METADATA = (
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "generation",
    "managedFields",
    "resourceVersion",
    "uid",
)

LEFT_OUT: tuple[str, ...] = (
    "Fields the Kubernetes Go types do not know are kept; the typed round trip drops them (a misspelt field "
    "reaches a resource policy offline, not under the engine: policies read only real fields).",
    "Resource quantities are kept as written; the round trip canonicalises them (0.5 -> 500m, 1024Mi -> 1Gi): "
    "the pack compares quantities by value, never by spelling.",
    "Zero values of non-pointer `omitempty` fields (hostNetwork: false, minReadySeconds: 0, an empty labels map or "
    "ports list) are kept; the round trip drops them: the pack treats an absent field as its zero value.",
    "Autonaming (`metadata.name` left out), the provider's default namespace, and the `managed-by: pulumi` label of "
    "client-side apply: every object of the program names itself, and the provider runs server-side apply.",
    "OpenAPI validation failures, which the engine reports as Check failures before any policy runs.",
    "Other providers' Check (pulumi-random's schema defaults): their inputs are sent as the program gave them.",
)


def _kubernetes_check(inputs: dict[str, Any], secret_paths: frozenset[str]) -> tuple[dict[str, Any], set[str]]:
    checked = dict(inputs)
    metadata = checked.get("metadata")
    if isinstance(metadata, dict):
        checked["metadata"] = {k: v for k, v in metadata.items() if k not in READ_ONLY_METADATA}
    secret = checked.get("kind") == "Secret" and checked.get("apiVersion") == "v1"
    if secret and not contains_unknown(inputs) and is_built_in(str(checked.get("apiVersion"))):
        checked = _normalised_secret(checked)
    if secret:
        return checked, {key for key in ("data", "stringData") if key in checked}
    return checked, _annotated_secrets(checked, secret_paths)


def _normalised_secret(secret: dict[str, Any]) -> dict[str, Any]:
    string_data = secret.get("stringData")
    result = dict(secret)
    if isinstance(string_data, dict) and string_data:
        data = dict(secret.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        result["data"] = data
        del result["stringData"]
    elif isinstance(secret.get("data"), dict):
        result["data"] = {key: _reencoded(value) for key, value in secret["data"].items()}
    return result


def _reencoded(value: Any) -> Any:
    # `normalizeSecretData`: decode and encode again; a value that is not base64 is left for the server to refuse.
    if not isinstance(value, str):
        return value
    try:
        return base64.b64encode(base64.b64decode(value, validate=False)).decode()
    except (binascii.Error, ValueError):
        return value


def _annotated_secrets(checked: dict[str, Any], secret_paths: frozenset[str]) -> set[str]:
    """`annotateSecrets` over a non-Secret object: nested objects are walked, any other value holding a secret
    becomes secret as a whole."""
    marked: set[str] = set()

    def walk(value: dict[str, Any], prefix: str) -> None:
        for key, child in value.items():
            path = f"{prefix}.{key}" if prefix else key
            holds = any(p == path or p.startswith((path + ".", path + "[")) for p in secret_paths)
            if not holds:
                continue
            if isinstance(child, dict) and path not in secret_paths:
                walk(child, path)
            else:
                marked.add(path)

    walk(checked, "")
    return marked


def _docker_image_check(inputs: dict[str, Any]) -> dict[str, Any]:
    checked = {**inputs, "buildOnPreview": inputs.get("buildOnPreview") is True}
    build = inputs.get("build")
    if build is None:
        checked["build"] = {"dockerfile": "Dockerfile", "context": "."}
    elif isinstance(build, dict):
        filled = dict(build)
        # `marshalBuildAndApplyDefaults` leaves an unknown context empty, so a known Dockerfile left out is then
        # `Dockerfile` (path.Join("", ...)).
        context = "" if contains_unknown(build.get("context")) else build.get("context") or "."
        if context:
            filled["context"] = context
        if not contains_unknown(build.get("dockerfile")):
            filled["dockerfile"] = build.get("dockerfile") or posixpath.join(context, "Dockerfile")
        checked["build"] = filled
    return checked


def checked_inputs(resource: RecordedResource) -> tuple[dict[str, Any], frozenset[str]]:
    """The provider's `Check` output for the resource's inputs, and which of its paths are secret."""
    if is_kubernetes(resource):
        checked, secrets = _kubernetes_check(resource.inputs, resource.secret_paths)
        return checked, frozenset(secrets)
    if resource.type == DOCKER_IMAGE:
        return _docker_image_check(resource.inputs), resource.secret_paths
    return resource.inputs, resource.secret_paths
