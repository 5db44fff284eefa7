"""Plans a second `pulumi up`: the program re-run against the state an earlier up left, diffed the way the engine and
the providers diff it, so a test can prove that a release replaces or deletes nothing that holds data.

`plan_update(previous, current)` walks `current` in registration order as the engine's step generator does: a URN
only in `current` is a create, one only in `previous` a delete (listed last, in reverse order, as the engine deletes
after everything else), and a URN in both is diffed. Each provider's rules decide which changed paths force a
replacement, the `replaceOnChanges` and `ignoreChanges` options adjust that, a delete-before-replace cascades to
dependents, and `protect` makes a replace or delete fail the update (`PlannedStep.blocked`). Component resources
and explicit `pulumi:providers:` resources are listed too, diffed by their inputs, and never replaced.

Source versions read: pulumi/pulumi @1b59498 (`pkg/resource/deploy/step_generator.go`, `step.go`),
pulumi/pulumi-kubernetes @9497796 (v4.32+; `provider/pkg/provider/provider.go` `Diff`, `diff.go`),
pulumi/pulumi-docker @237b789 (v5.1+; `provider/provider.go` `Diff`), hashicorp/terraform-provider-random @ad788e2
(`internal/provider/resource_password.go`, the upstream pulumi-random bridges).

Not modelled (a real preview can differ):
- Provider `Check` normalisation: pulumi-kubernetes `normalizeInputs`, random's attribute defaults, and docker's
  `build.contextDigest` (a hash of the build context that Check adds, so a source-only change under the same image
  name rebuilds for real: an update, never a replace, where this plans "same").
- Server-side drift and `refresh`: the Kubernetes Diff compares the new inputs with the *live* object pruned to the
  old inputs' shape, so a field changed in the cluster (kubectl edit, a mutating webhook) shows up as a change there;
  here the old inputs stand for the live object.
- Aliases: a renamed resource, or a Kubernetes kind moved to another apiVersion (part of the type token, so of the
  URN; the SDK aliases older versions and the provider then updates in place, as `apiVersion` is in no force-new
  list), plans create + delete here. Stricter than the engine, never kinder.
- Explicit provider resources' `DiffConfig` (a replaced provider replaces everything it manages), `deletedWith`,
  `replaceWith`, `--target`, imports, and pending replacements or init errors left by a failed up.
- The kinder exceptions of terraform-provider-random (keepers that only gain null values, `override_special` going
  from "" to null): here every input change replaces. The Kubernetes provider flags `enableSecretMutable` and
  `enableConfigMapMutable` are taken at their default, false (provider.go `Configure`); this stack sets neither.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from harness.recording import DOCKER_IMAGE, UNKNOWN, RecordedResource, Recording

Op = Literal["same", "update", "replace", "create", "delete"]
Path = tuple[str | int, ...]

_MISSING = object()
"""An absent key or list element (a delete when it is the new value)."""


@dataclass(frozen=True)
class PlannedStep:
    urn: str
    type: str
    op: Op
    changed: tuple[str, ...] = ()
    """Input paths that differ (after `ignoreChanges`), in Pulumi property-path syntax, sorted."""
    replace_reasons: tuple[str, ...] = ()
    """Each path (or option) that forces the replacement, with the rule it comes from."""
    blocked: str = ""
    """Why `protect` makes the update fail at this step; empty when it does not."""


def plan_update(previous: Recording, current: Recording, *, unready_jobs: Collection[str] = ()) -> list[PlannedStep]:
    """The steps `pulumi up` would take to go from `previous` (the state an earlier up left) to `current`.

    `current` may be a preview run: an unknown input counts as changed, and replaces where the provider's rule
    covers that path (pulumi-kubernetes renders it null in the patch, so only a force-new path at or above it
    matches).

    `unready_jobs`: URNs of Jobs that are not complete in the cluster (the earlier up failed or was cancelled while
    they ran). After a successful up every Job completed, as pulumi-kubernetes waits for it (await/job.go).
    """
    olds = {resource.urn: resource for resource in previous}
    registered: set[str] = set()
    cascaded: dict[str, list[str]] = {}
    steps: list[PlannedStep] = []
    for new in current:
        old = olds.get(new.urn)
        if old is None:
            steps.append(PlannedStep(new.urn, new.type, "create"))
        else:
            cascade = cascaded.pop(new.urn, [])
            step = _step(old, new, unready=new.urn in unready_jobs, cascade=cascade)
            if step.op == "replace" and _deletes_before_replacing(old, new):
                for urn, reason in _dependent_replacements(old, previous, registered):
                    cascaded.setdefault(urn, []).append(reason)
            steps.append(step)
        registered.add(new.urn)
    current_urns = {resource.urn for resource in current}
    for old in reversed(previous.resources):
        if old.urn not in current_urns:
            # step.go DeleteStep.Apply: deleting a resource the state marks protected fails the update.
            blocked = f"{old.urn} is protected and would be deleted" if old.protect else ""
            steps.append(PlannedStep(old.urn, old.type, "delete", blocked=blocked))
    return steps


def blocked_by_protect(steps: Iterable[PlannedStep]) -> list[PlannedStep]:
    """The steps at which `pulumi up` fails because the resource is protected (a preview shows them as errors)."""
    return [step for step in steps if step.blocked]


def is_data_bearing(resource: RecordedResource) -> bool:
    """Whether replacing or deleting the resource loses data that no input can recreate.

    - PersistentVolumeClaims and PersistentVolumes are the data.
    - A StatefulSet that declares `volumeClaimTemplates` owns its pods' claims: replacing it deletes and recreates
      the set (named, so delete-before-replace) and any template change no longer matches the claims it finds.
    - A Namespace: deleting it deletes every object in it, the claims included.
    - Every `random:` resource: its value exists only in the Pulumi state, and a replacement generates a new one.
      Here the Postgres password is read only by initdb on an empty volume, so a new password locks the app out of
      the existing database.
    """
    if not resource.custom:
        return False
    if resource.type.startswith("random:"):
        return True
    kind = _kubernetes_kind(resource)
    if kind is None:
        return False
    if kind[2] == "StatefulSet":
        return bool((resource.inputs.get("spec") or {}).get("volumeClaimTemplates"))
    return kind[2] in {"PersistentVolumeClaim", "PersistentVolume", "Namespace"}


def parse_property_path(text: str) -> Path:
    """A Pulumi property path (`spec.template`, `a.b[0]`, `metadata.annotations["x/y"]`, `*`) as segments."""
    segments: list[str | int] = []
    position = 0
    while position < len(text):
        match = _PATH_SEGMENT.match(text, position)
        if not match or (match.group("name") is not None and (match.group("dot") is None) != (position == 0)):
            raise ValueError(
                f"property path {text!r}: cannot read it at character {position}; "
                'use names joined by ".", [index], ["key"] or *'
            )
        index, key, name = match.group("index", "key", "name")
        if index is not None:
            segments.append(int(index))
        elif key is not None:
            segments.append(key.replace('\\"', '"'))
        else:
            segments.append(name or "*")  # `[*]` has neither
        position = match.end()
    if not segments:
        raise ValueError("property path '': give at least one name, or * for every property")
    return tuple(segments)


_PATH_SEGMENT = re.compile(r'\[(?P<index>\d+)\]|\["(?P<key>(?:[^"\\]|\\.)*)"\]|\[\*\]|(?P<dot>\.)?(?P<name>[^.\[\]"]+)')


def format_property_path(path: Path) -> str:
    """The path as pulumi-kubernetes prints a detailed-diff key (provider.go `addPatchValueToDiff`)."""
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif re.search(r'[."\[\]]', segment):
            text += '["' + segment.replace('"', '\\"') + '"]'
        else:
            text += f".{segment}" if text else segment
    return text


def _contains(prefix: Path, path: Path) -> bool:
    # pulumi sdk/go/common/resource/properties_path.go `PropertyPath.Contains`: "*" matches any name or index.
    return len(path) >= len(prefix) and all(p == "*" or p == q for p, q in zip(prefix, path, strict=False))


def _changes(old: Any, new: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """Changed paths with their new value, recursing where both sides are objects or both are lists.

    This is where pulumi-kubernetes records a detailed-diff entry (provider.go `addPatchValueToDiff`): maps key by
    key, lists index by index, anything else at the first point of difference.
    """
    if old == new:  # equal subtrees hold no change (most of a resource): one comparison instead of the walk
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            change
            for key in sorted({*old, *new})
            for change in _changes(old.get(key, _MISSING), new.get(key, _MISSING), (*path, key))
        ]
    if isinstance(old, list) and isinstance(new, list):
        return [
            change
            for index in range(max(len(old), len(new)))
            for change in _changes(
                old[index] if index < len(old) else _MISSING,
                new[index] if index < len(new) else _MISSING,
                (*path, index),
            )
        ]
    # An unknown new value (a preview, or a dependent's input while its dependency is deleted first) is the
    # UNKNOWN sentinel, which no state holds: it always counts as a change.
    return [] if old == new else [(path, new)]


@dataclass
class _Diff:
    changed: list[str]
    reasons: dict[str, str]
    """Formatted path -> why it replaces."""


def _diff(
    old: RecordedResource, new_inputs: Mapping[str, Any], options: RecordedResource, *, unready: bool = False
) -> _Diff:
    """The provider's Diff plus the engine's options, `options` being the registration whose options apply."""
    ignored = [parse_property_path(path) for path in options.ignore_changes]
    replace_on = [parse_property_path(path) for path in options.replace_on_changes]
    changes = [
        (path, value)
        for path, value in _provider_changes(old, old.inputs, new_inputs)
        # Engine `processIgnoreChanges` resets ignored paths to their old values before Diff; pulumi-kubernetes
        # `Diff` also drops detailed-diff entries under an ignored path.
        if not any(_contains(ignore, path) for ignore in ignored)
    ]
    reasons: dict[str, str] = {}
    if old.custom and not old.type.startswith("pulumi:providers:"):
        rule = _replace_rule(old)
        for path, value in changes:
            reason = rule(path, value)
            if reason:
                reasons[format_property_path(path)] = f"{format_property_path(path)}: {reason}"
        for path, _ in changes:
            # step_generator.go `applyReplaceOnChanges`: a change under a replaceOnChanges path becomes a replace.
            matching = [format_property_path(p) for p in replace_on if _contains(p, path)]
            if matching:
                reasons.setdefault(
                    format_property_path(path),
                    f"{format_property_path(path)}: replaceOnChanges {matching[0]!r} (engine applyReplaceOnChanges)",
                )
        if unready and _kubernetes_kind(old) is not None and _replaces_unready(new_inputs):
            reasons[_REPLACE_UNREADY_PATH] = (
                f"{_REPLACE_UNREADY_PATH}: the Job is not complete (pulumi-kubernetes Diff, replaceUnready)"
            )
    return _Diff([format_property_path(path) for path, _ in changes], reasons)


def _step(old: RecordedResource, new: RecordedResource, *, unready: bool, cascade: list[str]) -> PlannedStep:
    diff = _diff(old, new.inputs, new, unready=unready)
    if new.custom and new.provider != old.provider:
        # step_generator.go `providerChanged`: another provider reference replaces unless the new provider's
        # DiffConfig says otherwise; DiffConfig is not modelled, so this takes the stricter answer.
        diff.reasons["provider"] = "provider: the resource moved to another provider (engine providerChanged)"
    reasons = sorted({*diff.reasons.values(), *cascade})
    op: Op = "replace" if reasons else "update" if diff.changed else "same"
    blocked = ""
    # step_generator.go `continueStepsFromDiff`: a replace fails when both the state and the program protect the
    # resource (unprotecting and replacing in one up is allowed); a dependent that a delete-before-replace takes
    # with it fails when the state protects it, whatever the program now says.
    if op == "replace" and old.protect and (new.protect or cascade):
        blocked = f"{new.urn} is protected and would be replaced"
    return PlannedStep(new.urn, new.type, op, tuple(sorted(diff.changed)), tuple(reasons), blocked)


def _deletes_before_replacing(old: RecordedResource, new: RecordedResource) -> bool:
    # step_generator.go: the `deleteBeforeReplace` option wins, else the provider decides. The recording cannot tell
    # an explicit False from unset, so the provider always gets its say (more cascades: the stricter reading).
    if new.delete_before_replace:
        return True
    if _kubernetes_kind(new) is None:
        return False
    # pulumi-kubernetes Diff: delete first when the replacement keeps the user-given name and namespace.
    old_metadata, new_metadata = old.inputs.get("metadata") or {}, new.inputs.get("metadata") or {}
    name = new_metadata.get("name")
    return (
        bool(name)
        and name == old_metadata.get("name")
        and new_metadata.get("namespace") == old_metadata.get("namespace")
    )


def _dependent_replacements(
    root: RecordedResource, previous: Recording, registered: Collection[str]
) -> list[tuple[str, str]]:
    """Dependents a delete-before-replace of `root` deletes and recreates with it.

    step_generator.go `calculateDependentReplacements`: for each later resource in the old state (skipping those the
    program already registered), the inputs that depend on a resource being replaced become unknown, and the
    provider's Diff of that (plus the resource's replaceOnChanges) decides; a replaced dependent joins the set.
    """
    replacing = {root.urn}
    found: list[tuple[str, str]] = []
    urns = [resource.urn for resource in previous]
    for candidate in previous.resources[urns.index(root.urn) + 1 :]:
        if not candidate.custom or candidate.urn in registered:
            continue
        # A provider reference is `<provider URN>::<provider id>`.
        if candidate.provider and candidate.provider.rpartition("::")[0] in replacing:
            reasons = [
                f"provider: its provider {candidate.provider} is replaced first (calculateDependentReplacements)"
            ]
        else:
            unknown = {key for key, deps in candidate.property_dependencies.items() if replacing.intersection(deps)}
            if not unknown:
                continue
            inputs = {key: UNKNOWN if key in unknown else value for key, value in candidate.inputs.items()}
            reasons = list(_diff(candidate, inputs, candidate).reasons.values())
        if reasons:
            replacing.add(candidate.urn)
            cause = f"deleted with {root.urn} (delete-before-replace; engine calculateDependentReplacements)"
            found += [(candidate.urn, f"{reason}; {cause}") for reason in reasons]
    return found


# --- Provider rules -------------------------------------------------------------------------------------------

ReplaceRule = Callable[[Path, Any], str]
"""Why a change at the path (to the given new value) forces a replacement, or "" when it updates in place."""


def _provider_changes(
    resource: RecordedResource, old_inputs: Mapping[str, Any], new_inputs: Mapping[str, Any]
) -> list[tuple[Path, Any]]:
    changes = _changes(dict(old_inputs), dict(new_inputs))
    if resource.type == DOCKER_IMAGE:
        # pulumi-docker provider.go `diffUpdates`: of `registry`, only `server` counts; a new username or password
        # is not a change at all ("should not trigger a rebuild").
        changes = [(p, v) for p, v in changes if not (len(p) > 1 and p[0] == "registry" and p[1] != "server")]
    return changes


def _replace_rule(resource: RecordedResource) -> ReplaceRule:
    if resource.type == DOCKER_IMAGE:
        # pulumi-docker provider.go `Diff`: every change is an UPDATE (rebuild and push); it never asks to replace.
        return lambda path, value: ""
    if resource.type.startswith("random:"):
        # terraform-provider-random resource_password.go `passwordSchemaV3` (and the other resources alike): every
        # input (keepers, length, special, upper, lower, number, numeric, min_*, override_special) has a
        # RequiresReplace plan modifier; only computed outputs (result, bcrypt_hash, id) do not.
        return lambda path, value: "every random input requires replacement (terraform-provider-random RequiresReplace)"
    kind = _kubernetes_kind(resource)
    if kind is not None:
        return _kubernetes_rule(resource, kind)
    return lambda path, value: "no replacement rules are modelled for this provider, so every change may replace"


def _kubernetes_kind(resource: RecordedResource) -> tuple[str, str, str] | None:
    """(group, version, kind) as the provider reads it from the inputs (`gvkFromUnstructured`), else the type."""
    if not resource.type.startswith("kubernetes:") or not resource.custom:
        return None
    _, module, kind = resource.type.split(":")
    api_version = str(resource.inputs.get("apiVersion") or module.replace("core/", ""))
    group, _, version = api_version.rpartition("/")
    return group, version, str(resource.inputs.get("kind") or kind)


def _kubernetes_rule(resource: RecordedResource, gvk: tuple[str, str, str]) -> ReplaceRule:
    force_new = [parse_property_path(path.removeprefix(".")) for path in _kubernetes_force_new(resource, gvk)]

    def rule(path: Path, value: Any) -> str:
        # provider.go `Diff`: a deleted `metadata` replaces.
        if path == ("metadata",) and value is _MISSING:
            return "metadata removed (pulumi-kubernetes Diff)"
        matched = [
            p for p in force_new if _contains(p, path) or (_contains(path, p) and _resolves(value, p[len(path) :]))
        ]
        if not matched:
            return ""
        return f"pulumi-kubernetes forces replacement on .{format_property_path(matched[0])} (diff.go forceNew)"

    return rule


def _resolves(value: Any, rest: Path) -> bool:
    """Whether a force-new JSONPath below the changed path exists in the new value (openapi/match.go
    `PatchPropertiesChanged` evaluates it against the patch, which holds the whole new value there)."""
    if not rest:
        return True
    head, tail = rest[0], rest[1:]
    if head == "*":
        return isinstance(value, list) and any(_resolves(item, tail) for item in value)
    return isinstance(value, dict) and head in value and _resolves(value[head], tail)


def _kubernetes_force_new(resource: RecordedResource, gvk: tuple[str, str, str]) -> tuple[str, ...]:
    # diff.go `forceNewProperties`; Patch resources change only with their identity (provider.go `Diff`,
    # kinds.IsPatchResource).
    group, version, kind = gvk
    identity = (".metadata.name", ".metadata.namespace")
    if resource.type.endswith(f":{kind}Patch"):
        return identity
    kinds = _FORCE_NEW.get(group, {}).get(version)
    if kinds is None:
        return identity
    if group in ("", "core") and kind == "Secret":
        return (*identity, ".type", ".stringData", ".data")
    if kind in kinds:
        return (*identity, *kinds[kind])
    if group in ("", "core") and kind == "ConfigMap":
        return (*identity, ".binaryData", ".data")
    return identity


def _label_selector(prefix: str) -> tuple[str, ...]:
    fields = ("matchExpressions", "matchExpressions.key", "matchExpressions.operator", "matchExpressions.values")
    return tuple(f"{prefix}.{field}" for field in (*fields, "matchLabels"))


def _container_fields(*prefixes: str) -> tuple[str, ...]:
    fields = (  # noqa: SIM905 (the provider's lists, compact)
        "args command env env.value image imagePullPolicy lifecycle livenessProbe ports readinessProbe resources "
        "securityContext stdin stdinOnce terminationMessagePath terminationMessagePolicy tty volumeDevices "
        "volumeMounts workingDir"
    ).split()
    return tuple(f"{prefix}.{field}" for prefix in prefixes for field in fields)


# pulumi-kubernetes provider/pkg/provider/diff.go `forceNew`, group -> version -> kind -> JSONPaths, as written there
# (PodDisruptionBudget is listed for policy/v1beta1 only, so a policy/v1 PDB's spec updates in place).
_SELECTOR = (".spec.selector", *_label_selector(".spec.selector"))
_STATEFUL_SET = (
    ".spec.podManagementPolicy",
    ".spec.revisionHistoryLimit",
    ".spec.serviceName",
    ".spec.volumeClaimTemplates",
    *_SELECTOR,
)
_JOB = (".spec.completions", ".spec.parallelism", ".spec.template", *_SELECTOR)
_ROLE_BINDING: dict[str, tuple[str, ...]] = {"ClusterRoleBinding": (".roleRef",), "RoleBinding": (".roleRef",)}
_PERSISTENT_VOLUME_SOURCES = (  # noqa: SIM905 (the provider's lists, compact)
    "awsElasticBlockStore azureDisk azureFile cephfs cinder csi fc flexVolume flocker gcePersistentDisk glusterfs "
    "hostPath iscsi local nfs photonPersistentDisk portworxVolume quobyte rbd scaleIO storageos vsphereVolume"
).split()
_POD_FIELDS = (  # noqa: SIM905 (the provider's lists, compact)
    "affinity automountServiceAccountToken dnsConfig dnsPolicy enableServiceLinks hostAliases hostIPC hostNetwork "
    "hostPID hostname imagePullSecrets nodeName nodeSelector overhead preemptionPolicy priority priorityClassName "
    "readinessGates restartPolicy runtimeClassName schedulerName securityContext serviceAccount serviceAccountName "
    "shareProcessNamespace subdomain terminationGracePeriodSeconds volumes"
).split()
_CORE = {
    "v1": {
        "PersistentVolume": tuple(f".spec.{source}" for source in _PERSISTENT_VOLUME_SOURCES),
        "PersistentVolumeClaim": (
            ".spec.accessModes",
            ".spec.selector",
            ".spec.storageClassName",
            ".spec.volumeName",
            *_label_selector(".spec.selector"),
        ),
        "Pod": (
            *(f".spec.{field}" for field in _POD_FIELDS),
            *_container_fields(".spec.containers[*]", ".spec.initContainers[*]"),
        ),
        "ResourceQuota": (".spec.scopes",),
        "Secret": (".type",),
        "Service": (".spec.clusterIP",),
    }
}
_APPS = {"DaemonSet": _SELECTOR, "Deployment": _SELECTOR, "StatefulSet": _STATEFUL_SET}
_FORCE_NEW: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "apps": {"v1beta1": {"StatefulSet": _STATEFUL_SET}, "v1beta2": _APPS, "v1": _APPS},
    "core": _CORE,
    "": _CORE,
    "policy": {"v1beta1": {"PodDisruptionBudget": (".spec",)}},
    "rbac.authorization.k8s.io": {"v1alpha1": _ROLE_BINDING, "v1beta1": _ROLE_BINDING, "v1": _ROLE_BINDING},
    "storage.k8s.io": {"v1": {"StorageClass": (".parameters", ".provisioner")}},
    "batch": {"v1beta1": {"Job": _JOB}, "v1": {"Job": _JOB}, "v2alpha1": {"Job": _JOB}},
}

_REPLACE_UNREADY = "pulumi.com/replaceUnready"
_REPLACE_UNREADY_PATH = f'.metadata.annotations["{_REPLACE_UNREADY}"]'


def _replaces_unready(inputs: Mapping[str, Any]) -> bool:
    # provider.go `Diff`: with `pulumi.com/replaceUnready: "true"` (exactly, metadata.IsAnnotationTrue) a Job whose
    # live object is not complete is replaced; for other kinds the provider only warns. A Job already gone (TTL)
    # fails the read and is left alone.
    annotations = (inputs.get("metadata") or {}).get("annotations") or {}
    return inputs.get("kind") == "Job" and annotations.get(_REPLACE_UNREADY) == "true"
