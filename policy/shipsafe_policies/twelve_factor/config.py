"""III Config: config from the environment, credentials only from Secrets, no test-only switches."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .. import k8s
from ..floor import SECRETS
from ..framework import ADVISORY, WAIVER_ANNOTATION, Config, HasProps, Item, Section, item_by_item
from ..k8s import dig, items, workload_containers
from ..patterns import (
    HOST,
    looks_secret,
    names_a_secret,
    secret_by_name,
    secret_in_metadata,
    secret_on_command_line,
)

SECTION = Section(__name__, "12f-config", topic="III Config; Sec")


def _literal_env(container: Mapping[str, Any], item: Item) -> Iterator[tuple[str, str]]:
    with item():
        for variable in items(container.get("env")):
            with item():
                value = variable.get("value")
                if isinstance(value, str):
                    yield str(variable.get("name")), value


@SECTION.resource(
    "12f-config-no-plaintext-secret-env",
    "No literal secret in env: credentials only through secretKeyRef or *_FILE mounts.",
    "Move the value into a Secret (pulumi config --secret) and use valueFrom.secretKeyRef.",
    types=k8s.WORKLOADS,
    floor=SECRETS,
)
@item_by_item
def check_no_plaintext_secret_env(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        for name, value in _literal_env(container, item):
            if secret_by_name(name, value) or looks_secret(value):
                yield f"{label}: env {name} holds a literal secret; use valueFrom.secretKeyRef (or a *_FILE mount)"


_HANDLERS = ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle.postStart", "lifecycle.preStop")


def _command_lines(container: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, words) of every command line the container runs: its command with args, and each exec handler."""
    yield "command/args", [*items(container.get("command")), *items(container.get("args"))]
    for handler in _HANDLERS:
        words = dig(container, *handler.split("."), "exec", "command")
        if words is not None:
            yield f"{handler} exec", items(words)


@SECTION.resource(
    "12f-config-no-secret-on-command-line",
    "No secret on a command line (command, args, probe and hook exec), for the app and backing services alike: "
    "every process and every `ps` on the node shows it.",
    "Pass the secret as a file (*_FILE, --password-file, a config file in a Secret volume) or through env from "
    "valueFrom.secretKeyRef, expanded as $(VAR) only where the program cannot read a file.",
    types=k8s.WORKLOADS,
    topic="Sec; III Config",
    fields=("container.command", "container.args"),
    floor=SECRETS,
)
@item_by_item
def check_no_secret_on_command_line(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    # Messages name the place, never the value: reports end up in CI logs.
    for label, container in workload_containers(res):
        for where, words in _command_lines(container):
            with item():
                if secret_on_command_line([w for w in words if isinstance(w, str)]):
                    yield f"{label}: {where} carries a literal secret; read it from a mounted Secret file instead"


def _metadata_maps(res: HasProps) -> Iterator[tuple[str, Any]]:
    """(where, map) of the object's labels and annotations and its pod template's."""
    template = k8s.pod_template(res)
    for owner, metadata in (("", dig(res.props, "metadata")), ("pod template ", dig(template, "metadata"))):
        if template is res.props and owner:
            continue  # a bare Pod is its own template
        for field in ("labels", "annotations"):
            yield f"{owner}{field}", dig(metadata, field) or {}


@SECTION.resource(
    "12f-config-no-secret-in-metadata",
    "No secret in a label or annotation: anyone who may list the object (or its pods) reads them, and they are "
    "logged, copied to events and to every pod.",
    "Keep the credential in a Secret; annotate with its checksum (sha256) if a change must roll the pods.",
    types=None,
    topic="Sec; III Config",
    fields=("metadata.labels", "metadata.annotations"),
    floor=SECRETS,
)
@item_by_item
def check_no_secret_in_metadata(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for where, mapping in _metadata_maps(res):
        with item():
            for key in mapping:
                with item():
                    value = mapping[key]
                    # A waiver's key names the rule it waives (often a secret rule) and its value is prose.
                    if (
                        not key.startswith(WAIVER_ANNOTATION)
                        and isinstance(value, str)
                        and secret_in_metadata(key, value)
                    ):
                        yield f"{where} {key} carries a credential; keep it in a Secret"


def _entries(res: HasProps, field: str, item: Item) -> Iterator[tuple[str, Any]]:
    """(key, value) of a map field (ConfigMap/Secret data): an unknown value skips just its key."""
    with item():  # stringData built from a generated password is unknown in preview, often as a whole
        mapping = res.props.get(field) or {}
        for key in mapping:
            with item():
                yield key, mapping[key]


@SECTION.resource(
    "12f-config-no-sensitive-configmap",
    "ConfigMaps hold no credentials.",
    "Move credential-looking keys into a Secret.",
    types={k8s.CONFIG_MAP},
    floor=SECRETS,
)
@item_by_item
def check_no_sensitive_configmap(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for field in ("data", "binaryData"):
        for key, value in _entries(res, field, item):
            if (value and names_a_secret(key)) or looks_secret(str(value)):
                yield f"{field}.{key} looks like a credential; move it to a Secret and use secretKeyRef"


def _decoded(value: Any) -> Any:
    """A Secret's `data` value as text; one that is not base64 as written (the API server refuses it)."""
    try:
        return base64.b64decode(str(value), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return value


_PLACEHOLDERS = re.compile(r"(?i)^(changeme|change-me|password|secret|replace.*|todo|xxx+|test|example)$")


@SECTION.resource(
    "12f-config-secret-hygiene",
    "Secrets have a type and no empty or placeholder values.",
    "Set type and real values from `pulumi config set --secret`.",
    types={k8s.SECRET},
    level=ADVISORY,
)
@item_by_item
def check_secret_hygiene(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    with item():
        if not res.props.get("type"):
            yield "set the Secret type (Opaque, kubernetes.io/dockerconfigjson, ...)"
    # The provider's Check hands policies `stringData` as base64 `data` once its values are known (pulumi-kubernetes
    # `clients/unstructured.go` `normalizeSecret`), so `data` is judged decoded, as the pods will read it.
    for field in ("stringData", "data"):
        for key, value in _entries(res, field, item):
            text = _decoded(value) if field == "data" else value
            if not text or _PLACEHOLDERS.match(str(text)):
                yield f"{field}.{key} is empty or a placeholder; set it with `pulumi config set --secret`"


@SECTION.resource(
    "12f-config-from-env",
    "App config comes from the ConfigMap through env; no duplicate env, no hard-coded hosts.",
    "Use envFrom.configMapRef; move hosts/URLs into config or Secrets.",
    types=k8s.WORKLOADS,
    topic="III Config",
    **k8s.APP_SETTINGS,
)
@item_by_item
def check_config_from_env(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if not k8s.is_app_workload(res, config):
        return
    long_running = {id(c) for c in items(dig(k8s.pod_spec(res), "containers"))}
    for label, container in workload_containers(res):
        with item():
            # A one-off init container (a file copy, a wait) may need no config at all; the processes that
            # serve and work (regular containers and sidecars, which keep running) read theirs from the ConfigMap.
            serving = id(container) in long_running or container.get("restartPolicy") == "Always"
            from_config_map = any(dig(e, "configMapRef", "name") for e in items(container.get("envFrom"))) or any(
                dig(e, "valueFrom", "configMapKeyRef") for e in items(container.get("env"))
            )
            if serving and not from_config_map:
                yield f"{label}: take non-secret config from the app ConfigMap (envFrom.configMapRef)"
        with item():
            names = [str(e.get("name")) for e in items(container.get("env"))]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                yield f"{label}: env {', '.join(duplicates)} set more than once; keep one"
        # Messages name the place, never the value: it may carry credentials and reports end up in CI logs.
        for name, value in _literal_env(container, item):
            if HOST.search(value):
                yield f"{label}: env {name} hard-codes a host; read it from the ConfigMap or a Secret"
        for field in ("command", "args"):
            with item():
                for index, part in enumerate(items(container.get(field))):
                    with item():
                        if isinstance(part, str) and HOST.search(part):
                            yield f"{label}: {field}[{index}] hard-codes a host; pass it through env from config"


# What switches on the reference app's test-only fault injection (app/fault_injection): its variables, and the
# directory that activates it when it is on PYTHONPATH. `\b` keeps DEFAULT_... and similar names out.
_FAULT_INJECTION = re.compile(r"\b(APP_ENABLE_TEST_HOOKS|FAULT_[A-Z0-9_]*)|fault_injection")
_FAULT_FIX = "test-only fault injection; remove it (faulty releases come from the Dockerfile's `faulty` test target)"


def _mentions_fault_injection(value: Any) -> bool:
    return isinstance(value, str) and _FAULT_INJECTION.search(value) is not None


@SECTION.resource(
    "12f-config-no-fault-injection",
    "No test-only fault injection: no APP_ENABLE_TEST_HOOKS, FAULT_* or fault_injection path in any env,"
    " envFrom prefix, command, args or ConfigMap.",
    "Remove the variable or argument; deploy faulty releases only in tests (the Dockerfile's `faulty`).",
    types={*k8s.WORKLOADS, k8s.CONFIG_MAP},
    topic="III Config; X Dev/prod parity",
)
@item_by_item
def check_no_fault_injection(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if res.resource_type == k8s.CONFIG_MAP:
        for field in ("data", "binaryData"):
            for key, value in _entries(res, field, item):
                if _mentions_fault_injection(key) or _mentions_fault_injection(value):
                    yield f"{field}.{key} switches on {_FAULT_FIX}"
        return
    for label, container in workload_containers(res):
        with item():
            for variable in items(container.get("env")):
                with item():
                    name, value = variable.get("name"), variable.get("value")
                    if _mentions_fault_injection(name) or _mentions_fault_injection(value):
                        yield f"{label}: env {name} switches on {_FAULT_FIX}"
        with item():
            for source in items(container.get("envFrom")):
                with item():
                    if _mentions_fault_injection(source.get("prefix")):
                        yield f"{label}: envFrom prefix {source.get('prefix')} switches on {_FAULT_FIX}"
        for field in ("command", "args"):
            with item():
                for index, part in enumerate(items(container.get(field))):
                    with item():
                        if _mentions_fault_injection(part):
                            yield f"{label}: {field}[{index}] switches on {_FAULT_FIX}"
