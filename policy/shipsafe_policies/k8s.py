"""Reading Kubernetes objects as CrossGuard sees them: camelCase inputs, numbers as floats, maybe unknown."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypedDict

from pulumi_policy.proxy import UnknownValueError

from .framework import Config, HasProps, Item, Setting
from .reading import MappingRead, SequenceRead, derived

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
JOB = "kubernetes:batch/v1:Job"
CRON_JOB = "kubernetes:batch/v1:CronJob"
POD = "kubernetes:core/v1:Pod"
SERVICE = "kubernetes:core/v1:Service"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NAMESPACE = "kubernetes:core/v1:Namespace"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
RBAC = "kubernetes:rbac.authorization.k8s.io/v1:"
CLUSTER_RBAC = frozenset({RBAC + "ClusterRole", RBAC + "ClusterRoleBinding"})

SCALE_TARGETS: dict[tuple[Any, Any], str] = {
    ("apps", "Deployment"): DEPLOYMENT,
    ("apps", "StatefulSet"): STATEFUL_SET,
    ("apps", "ReplicaSet"): "kubernetes:apps/v1:ReplicaSet",
}
"""What an HPA's scaleTargetRef (API group, kind) may name, as resource types."""


def scale_target(hpa: HasProps) -> tuple[str | None, Any, Any]:
    """The (resource type, namespace, name) an HPA scales; the type is None for a kind no HPA can scale."""
    ref = dig(hpa.props, "spec", "scaleTargetRef") or {}
    group = str(ref.get("apiVersion") or "").rpartition("/")[0]
    return SCALE_TARGETS.get((group, ref.get("kind"))), dig(hpa.props, "metadata", "namespace"), ref.get("name")


WORKLOADS = frozenset(
    {
        DEPLOYMENT,
        STATEFUL_SET,
        "kubernetes:apps/v1:DaemonSet",
        "kubernetes:apps/v1:ReplicaSet",
        JOB,
        CRON_JOB,
        POD,
    }
)
LONG_RUNNING = frozenset({DEPLOYMENT, STATEFUL_SET, "kubernetes:apps/v1:DaemonSet"})

PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"
NAMESPACE_NAME = "kubernetes.io/metadata.name"
"""Set by the API server on every Namespace and immutable: the one label that pins a namespaceSelector."""


class AppSettings(TypedDict):
    """Settings of every policy that tells the app's processes from its backing services."""

    partOf: Setting
    backingComponents: Setting


APP_SETTINGS: AppSettings = {
    "partOf": Setting("string", "shipsafe", "Value of app.kubernetes.io/part-of that marks the stack's objects."),
    "backingComponents": Setting(
        "array",
        ["database", "cache"],
        "app.kubernetes.io/component values of backing services; every other workload of the app is an app process.",
        {"type": "string"},
    ),
}


# Values unknown during preview -----------------------------------------------------------------------------------
# pulumi-policy 1.21 (`proxy.py` `_raise_if_unknown`) raises UnknownValueError when a policy reads an unknown value,
# and `policy.py` `_PolicyAnalyzerServicer.Analyze`/`AnalyzeStack` turn it into the advisory "can't run policy ...
# during preview", keeping the violations reported before it. So a check guards each independent item, reports
# what it can decide, and re-raises at the end: one unknown skips only the items that read it, yet the policy is
# still listed as not fully run, never passed on a value it could not see.

_ABSENT = object()


class Lookup:
    """Entries read from the stack's resources, some maybe unknown: absence is an answer only if all were known."""

    def __init__(self) -> None:
        self.entries: dict[Any, Any] = {}
        self._reading = Item()

    def adding(self) -> Item:
        """Guards reading one entry (`with lookup.adding():`): an unknown leaves the lookup incomplete instead of
        ending the policy."""
        return self._reading

    def ensure_complete(self) -> None:
        """Call before concluding anything from what the lookup lacks; raises when an entry was unknown."""
        if self._reading.unknown is not None:
            raise self._reading.unknown

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self.entries:
            return self.entries[key]
        self.ensure_complete()
        return default

    def has(self, key: Any) -> bool:
        return self.get(key, _ABSENT) is not _ABSENT


# Reading objects ---------------------------------------------------------------------------------------------------


def dig(value: Any, *path: str | int) -> Any:
    """`value[p0][p1]...`, or None as soon as a step is missing (unknown values still raise)."""
    for step in path:
        # The common cases without the ABC checks below: a view, or the plain dict `sdk_speedup` hands over for
        # properties that hold no unknown.
        if (type(value) is MappingRead or type(value) is dict) and type(step) is str:
            value = value.get(step, _ABSENT)
            if value is _ABSENT:
                return None
        elif isinstance(step, int):
            if not _is_sequence(value) or step >= len(value):
                return None
            value = value[step]
        elif not isinstance(value, Mapping):
            return None
        else:
            # One read: `step in value` on the SDK's proxy reads the value too (`Mapping.__contains__` is
            # `self[key]`), raising for an unknown exactly as this read does.
            try:
                value = value[step]
            except KeyError:
                return None
    return value


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def items(value: Any) -> list[Any]:
    """A list field as a list (absent or null means empty)."""
    if type(value) is SequenceRead:
        return value.elements()
    if type(value) is list:  # plain properties (`sdk_speedup`): nothing to check
        return list(value)
    if not _is_sequence(value):
        return []
    return [value[i] for i in range(len(value))]  # each element read through the proxy, which checks it


def metadata(res: HasProps) -> Mapping[str, Any]:
    return dig(res.props, "metadata") or {}


def labels(res: HasProps) -> Mapping[str, Any]:
    """The object's labels as the API server keeps them: a Job declared without labels takes its template's
    (kubernetes `pkg/apis/batch/v1/defaults.go` `SetDefaults_Job`), so live and declared read the same."""
    return derived(res.props, _labels, res.resource_type)  # read by most rules: once per request


def _labels(props: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    own = dig(props, "metadata", "labels") or {}
    if not own and kind == JOB:
        return dig(_pod_template(props, kind), "metadata", "labels") or {}
    return own


def display(res: HasProps) -> str:
    kind = res.resource_type.rsplit(":", 1)[-1]
    try:
        name = dig(res.props, "metadata", "name")
    except UnknownValueError:  # a name taken from another resource's output: the Pulumi name still identifies it
        name = None
    return f"{kind} {name or res.name}"


def pod_template(res: HasProps) -> Mapping[str, Any] | None:
    """The pod template (metadata + spec) of any workload kind."""
    return _pod_template(res.props, res.resource_type)


def _pod_template(props: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    if kind == POD:
        return props
    if kind == CRON_JOB:
        return dig(props, "spec", "jobTemplate", "spec", "template")
    if kind in WORKLOADS:
        return dig(props, "spec", "template")
    return None


def pod_spec(res: HasProps) -> Mapping[str, Any] | None:
    return derived(res.props, _pod_spec, res.resource_type)  # read by every workload rule: once per request


def _pod_spec(props: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return dig(_pod_template(props, kind), "spec")


JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
"""Labels the API server gives every pod of a Job with a generated selector (`pkg/registry/batch/job/strategy.go`
`generateSelector`), equal to the Job's name; its `controller-uid` labels hold the uid, unknown until created."""


def pod_labels(res: HasProps) -> Mapping[str, Any]:
    """The labels of the workload's pods, with those the API server adds to a Job's template, so a selector that
    names them matches on the declared object as on the live one."""
    return derived(res.props, _pod_labels, res.resource_type)  # matched by most stack rules: once per request


def _pod_labels(props: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    declared = dig(_pod_template(props, kind), "metadata", "labels") or {}
    if kind != JOB or dig(props, "spec", "manualSelector") is True:
        return declared
    name = dig(props, "metadata", "name")
    return {**dict.fromkeys(JOB_NAME_LABELS, name), **declared}


def containers(spec: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    """Every container of a pod spec: init, regular and ephemeral (rules apply to all of them)."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from items(dig(spec, key))


def serving_containers(res: HasProps) -> list[Mapping[str, Any]]:
    """The containers that serve while the pod runs: regular containers and sidecars (init containers that keep
    running, restartPolicy Always); a plain init container has exited before the pod is ready."""
    spec = pod_spec(res)
    sidecars = [c for c in items(dig(spec, "initContainers")) if c.get("restartPolicy") == "Always"]
    return [*items(dig(spec, "containers")), *sidecars]


def declares_port(container: Mapping[str, Any], port: Any) -> bool:
    """The container declares `port`: a port name, or a containerPort number."""
    declared = items(container.get("ports"))
    if isinstance(port, str):
        return any(p.get("name") == port for p in declared)
    return number(port) is not None and any(number(p.get("containerPort")) == number(port) for p in declared)


def workload_containers(res: HasProps) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(label, container) for every container of the workload's pods, read once per request for all the rules
    that ask: an unknown met while reading them is raised after the containers read before it, where reading
    them one at a time would have raised it."""
    listed, unknown = derived(res.props, _workload_containers, res.resource_type)
    return listed if unknown is None else _then_raise(listed, unknown)


def _workload_containers(
    props: Mapping[str, Any], kind: str
) -> tuple[tuple[tuple[str, Mapping[str, Any]], ...], UnknownValueError | None]:
    listed: list[tuple[str, Mapping[str, Any]]] = []
    try:
        for container in containers(_pod_spec(props, kind)):
            listed.append((f"container {dig(container, 'name') or '?'}", container))
    except UnknownValueError as unknown:
        return tuple(listed), unknown
    return tuple(listed), None


def _then_raise(listed: Iterable[Any], unknown: UnknownValueError) -> Iterator[Any]:
    yield from listed
    raise unknown


def is_app_workload(res: HasProps, config: Config) -> bool:
    """The app's own processes (web, worker, migration...), as opposed to its backing services."""
    own = labels(res)
    return (
        res.resource_type in WORKLOADS
        and own.get(PART_OF) == config["partOf"]
        and own.get(COMPONENT) not in list(config["backingComponents"])
    )


def of_type(resources: Iterable[Any], *types: str) -> list[Any]:
    return [r for r in resources if r.resource_type in types]


def app_deployments(resources: list[Any], config: Config) -> list[Any]:
    """Long-running app Deployments (web, worker...): app workloads that are not the migration Job."""
    return [r for r in of_type(resources, DEPLOYMENT) if is_app_workload(r, config)]


def selector_matches(selector: Mapping[str, Any] | None, pod_labels: Mapping[str, Any]) -> bool:
    """matchLabels + matchExpressions semantics; an absent selector matches nothing, `{}` matches all."""
    if selector is None:
        return False
    match_labels = dig(selector, "matchLabels") or {}
    if not all(pod_labels.get(k) == v for k, v in match_labels.items()):
        return False
    for expression in items(dig(selector, "matchExpressions")):
        key, operator = expression["key"], expression["operator"]
        values = items(dig(expression, "values"))
        present = key in pod_labels
        if (
            (operator == "In" and (not present or pod_labels[key] not in values))
            or (operator == "NotIn" and present and pod_labels[key] in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def pinned_values(selector: Mapping[str, Any] | None, key: str) -> set[Any] | None:
    """The values a label selector restricts `key` to (matchLabels and `In`), or None when it leaves `key` open."""
    values = None
    match_labels = dig(selector, "matchLabels") or {}
    if key in match_labels:
        values = {match_labels[key]}
    for expression in items(dig(selector, "matchExpressions")):
        if expression.get("key") == key and expression.get("operator") == "In":
            allowed = set(items(expression.get("values")))
            values = allowed if values is None else values & allowed
    return values


def pins(selector: Mapping[str, Any] | None, key: str, allowed: Iterable[Any]) -> bool:
    """The selector admits only label values of `key` from `allowed`."""
    values = pinned_values(selector, key)
    return values is not None and values <= set(allowed)


PortSpan = tuple[float, float]
ALL_PORTS: PortSpan = (1.0, 65535.0)


def named_ports(workloads: Iterable[HasProps]) -> dict[str, set[float]]:
    """The workloads' container port names and the numbers they stand for (what a NetworkPolicy's named port means)."""
    named: dict[str, set[float]] = {}
    for workload in workloads:
        for _, container in workload_containers(workload):
            for port in items(container.get("ports")):
                value = number(port.get("containerPort"))
                if port.get("name") and value is not None:
                    named.setdefault(port["name"], set()).add(value)
    return named


def port_spans(rule: Mapping[str, Any], named: Mapping[str, set[float]]) -> list[PortSpan]:
    """Port ranges a NetworkPolicy rule admits: no `ports`, or an entry without `port`, admits every port."""
    entries = items(rule.get("ports"))
    if not entries:
        return [ALL_PORTS]
    spans: list[PortSpan] = []
    for entry in entries:
        port = entry.get("port")
        if port is None:
            spans.append(ALL_PORTS)
        elif isinstance(port, str):
            spans += [(n, n) for n in sorted(named.get(port, ()))]  # a name the pods don't declare admits nothing
        elif (start := number(port)) is not None:
            spans.append((start, number(entry.get("endPort")) or start))
    return spans


def admits(spans: Iterable[PortSpan], port: float) -> bool:
    return any(start <= port <= end for start, end in spans)


def service_selects(selector: Mapping[str, Any] | None, pod_labels: Mapping[str, Any]) -> bool:
    """Service selectors are plain label maps; an empty one selects nothing Kubernetes manages."""
    return bool(selector) and all(pod_labels.get(k) == v for k, v in (selector or {}).items())


def number(value: Any) -> float | None:
    """Numbers arrive as floats (protobuf Struct); bools are not numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def scale_targets(resources: Iterable[Any]) -> Lookup:
    """Every workload an HPA may scale, by what `scale_target` reads off an HPA: (type, namespace, name)."""
    workloads = Lookup()
    for workload in of_type(resources, *SCALE_TARGETS.values()):
        with workloads.adding():
            found = metadata(workload)
            workloads.entries[(workload.resource_type, found.get("namespace"), found.get("name"))] = workload
    return workloads
