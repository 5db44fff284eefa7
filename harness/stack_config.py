"""Reads `Pulumi.yaml` and `Pulumi.<stack>.yaml` as the Pulumi CLI does, and never more kindly.

pulumi/pulumi sources this follows:
- `sdk/go/common/encoding/marshal.go` reads both files with gopkg.in/yaml.v3, whose `decode.go` refuses a mapping
  key defined twice ("mapping key ... already defined at line ..."); PyYAML keeps the last one, so `StrictLoader`
  refuses it here.
- `sdk/go/common/resource/config/key.go` `ParseKey`: a stack config key is `<namespace>:<name>` (or the old
  `<namespace>:config:<name>`); anything else fails to load. A top-level scalar is kept as its text (`Value`).
- `sdk/go/common/workspace/project.go` (`ProjectConfigType`, `RewriteShorthandConfigValues`, `Validate`) and
  `pkg/workspace/config.go` (`mergeConfig`, `validateStackConfigValue`): project `config:` entries without a
  namespace belong to the project; a shorthand value is a `default` for a project key and a `value` for another
  namespace's; a stack value replaces the project's whole value; a typed entry checks the stack value's type and,
  with `secret: true`, that it is encrypted.
- `pkg/cmd/pulumi/config/config.go` `config set --path`, `io.go` `parseConfigKey`, `config/map.go` `Map.Set` and
  `config/object.go` `object.Set`/`coerce`: `set_path` below.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.local_files import BoundedLoader, LocalFileError, parse_yaml, read_text
from harness.local_files import where as _where

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The project this harness belongs to (the default project directory)."""
PLACEHOLDER_SECRET = "offline-placeholder-secret"
"""What the program gets for a `secure:` value, which only the CLI can decrypt."""
SECURE = "secure"
# `ProjectConfigType` attributes (`project.go`).
_PROJECT_CONFIG_ATTRIBUTES = frozenset({"type", "description", "items", "default", "value", "secret"})


class StackFileError(Exception):
    """A stack or project file the CLI would refuse to load; the message is one line naming file, line and key."""


class StrictLoader(BoundedLoader):
    """PyYAML's safe loader with the bounds of `harness.local_files`, refusing a mapping key defined twice as
    gopkg.in/yaml.v3 does."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges may be overridden by explicit keys
            key = self.construct_object(key_node, deep=True)
            if key in first_lines:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first defined at line {first_lines[key]}): the Pulumi CLI refuses it "
                    "and PyYAML would silently keep the last one",
                    key_node.start_mark,
                )
            first_lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree, read within the bounds of `harness.local_files`; anything refused becomes
    one `file:line:column: message` line. A file is parsed once per content (a preview reads the stack files for
    every phase); each caller gets its own document."""
    try:
        document, node = _parse(path, read_text(path))
    except LocalFileError as error:
        raise StackFileError(str(error)) from None
    return copy.deepcopy(document), node


@functools.lru_cache(maxsize=64)
def _parse(path: Path, text: str) -> tuple[Any, yaml.Node | None]:
    return parse_yaml(path, text, StrictLoader)


def _value_of(mapping: dict[Any, Any], key_node: yaml.Node) -> Any:
    """The constructed value under a key node (a key such as `123` is constructed as a number)."""
    text = key_node.value
    return mapping[text] if text in mapping else mapping[yaml.safe_load(text)]


def _entries(node: yaml.Node | None, name: str) -> list[tuple[yaml.Node, yaml.Node]]:
    """The key/value node pairs of the top-level mapping `name`."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key_node, value_node in node.value:
        if key_node.value == name and isinstance(value_node, yaml.MappingNode):
            return list(value_node.value)
    return []


def parse_key(text: str, where: str) -> str:
    """`ParseKey`: `<namespace>:<name>`, the old `<namespace>:config:<name>` normalized; anything else refused."""
    parts = text.split(":")
    if len(parts) == 2 or (len(parts) == 3 and parts[1] == "config"):
        return f"{parts[0]}:{parts[-1]}"
    raise StackFileError(
        f"{where}: could not parse {text!r} as a configuration key (configuration keys should be of the form "
        "`<namespace>:<name>`, e.g. `shipsafe:app`)"
    )


@dataclass(frozen=True)
class ProjectConfigEntry:
    type: str | None = None
    items: dict[str, Any] | None = None
    default: Any = None
    value: Any = None
    secret: bool = False


@dataclass
class StackFile:
    project: str
    config: dict[str, Any]
    """The stack file's `config:` as the CLI holds it: top-level scalars as their text, objects as data, secrets
    as `{"secure": <ciphertext>}`."""
    project_config: dict[str, ProjectConfigEntry] = field(default_factory=dict)


def _project_config(project: str, path: Path, data: dict[str, Any], node: yaml.Node | None) -> dict[str, Any]:
    entries: dict[str, ProjectConfigEntry] = {}
    for key_node, _ in _entries(node, "config"):
        raw_key = key_node.value
        where = _where(path, key_node.start_mark)
        key = parse_key(raw_key, where) if ":" in raw_key else f"{project}:{raw_key}"
        own = key.startswith(f"{project}:")
        spec = _value_of(data["config"], key_node)
        if not isinstance(spec, dict):  # shorthand (`RewriteShorthandConfigValues`)
            spec = {"default": spec} if own else {"value": spec}
        unknown = sorted(set(spec) - _PROJECT_CONFIG_ATTRIBUTES)
        if unknown:
            raise StackFileError(
                f"{where}: project config {raw_key!r} has unknown attributes {unknown}; allowed: "
                f"{sorted(_PROJECT_CONFIG_ATTRIBUTES)} (an object default goes under `default:`)"
            )
        entry = ProjectConfigEntry(
            type=spec.get("type"),
            items=spec.get("items"),
            default=spec.get("default"),
            value=spec.get("value"),
            secret=bool(spec.get("secret")),
        )
        _validate_project_entry(raw_key, entry, own, where)
        entries[key] = entry
    return entries


def _validate_project_entry(key: str, entry: ProjectConfigEntry, own: bool, where: str) -> None:
    # `project.go` `Project.Validate`.
    problem = None
    if entry.default is not None and entry.value is not None:
        problem = "cannot have both a 'default' and 'value' attribute"
    elif own and entry.type == "array" and entry.items is None:
        problem = "declares an array but does not specify the underlying type via the 'items' attribute"
    elif own and entry.type and entry.default is not None and not _of_type(entry.type, entry.items, entry.default):
        problem = f"has a default that is not of the expected type {entry.type!r}"
    elif not own and entry.type:
        problem = "is not namespaced by the project and should not define a type"
    elif not own and entry.default is not None:
        problem = "is not namespaced by the project and should not define a default value (use 'value')"
    elif not own and entry.value is None:
        problem = "is namespaced and must provide an attribute 'value'"
    if problem:
        raise StackFileError(f"{where}: project config {key!r} {problem}")


def _of_type(type_name: str, items: dict[str, Any] | None, value: Any) -> bool:
    """`project.go` `ValidateConfigValue`."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return True
        return isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value) is not None
    if type_name == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(_of_type(items.get("type", ""), items.get("items"), item) for item in value)


def stack_names(project_dir: Path) -> list[str]:
    """Every stack of the project, one per `Pulumi.<stack>.yaml` (committed or not): the only list of stacks there
    is. The name is everything between `Pulumi.` and `.yaml`, as the CLI names the file after the stack's last part
    (`workspace.DetectProjectStackPath`)."""
    files = project_dir.glob("Pulumi.*.yaml")
    return sorted(path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in files)


def policy_config_path(project_dir: Path, stack: str) -> Path:
    """The stack's own policy config, which every stack file needs beside it (`--policy-pack-config`)."""
    return project_dir / "policy" / "config" / f"{stack}.json"


def read_stack_file(stack: str, project_dir: Path) -> StackFile:
    """`Pulumi.yaml` and `Pulumi.<stack>.yaml`, loaded with the CLI's rules; StackFileError names what it refuses."""
    project_path = project_dir / "Pulumi.yaml"
    if not project_path.is_file():
        raise StackFileError(f"{project_dir}: no Pulumi.yaml, so not a Pulumi project directory")
    project_data, project_node = load_yaml(project_path)
    if not isinstance(project_data, dict) or not isinstance(project_data.get("name"), str):
        raise StackFileError(f"{_where(project_path, None)}: project is missing a 'name' attribute")
    project = project_data["name"]
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = ", ".join(stack_names(project_dir)) or "none"
        raise StackFileError(f"no stack file {path.name}; known stacks: {known}")
    data, node = load_yaml(path)
    config: dict[str, Any] = {}
    for key_node, value_node in _entries(node, "config"):
        key = parse_key(str(key_node.value), _where(path, key_node.start_mark))
        # A top-level scalar is the text written (`config.Value`), never YAML 1.1's reading of it (`yes`, `0123`).
        if isinstance(value_node, yaml.ScalarNode):
            config[key] = "" if value_node.tag == "tag:yaml.org,2002:null" else value_node.value
        else:
            config[key] = _value_of(data["config"], key_node)
    return StackFile(project, config, _project_config(project, project_path, project_data, project_node))


def is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SECURE}


def effective_config(stack: str, stack_file: StackFile, config: dict[str, Any]) -> dict[str, Any]:
    """`mergeConfig`: the stack's values, plus the project's value or default for each key the stack does not set;
    refused like the CLI when a required project key is missing, a typed one has the wrong type, or a secret one
    is in plain text."""
    merged = dict(config)
    missing = []
    for key, entry in sorted(stack_file.project_config.items()):
        own = key.startswith(f"{stack_file.project}:")
        if key not in merged:
            fallback = entry.value if entry.value is not None else entry.default
            if fallback is None:
                if own:
                    missing.append(key)
                continue
            merged[key] = fallback
        if entry.type:
            value = merged[key]
            if entry.secret and not is_secure(value):
                raise StackFileError(
                    f"Pulumi.{stack}.yaml: configuration key {key!r} must be encrypted as it's secret "
                    f"(`pulumi config set --secret {key} ...`)"
                )
            if not is_secure(value) and not _of_type(entry.type, entry.items, value):
                raise StackFileError(f"Pulumi.{stack}.yaml: configuration key {key!r} must be of type {entry.type!r}")
    if missing:
        raise StackFileError(f"stack {stack!r} is missing configuration values {missing} (declared in Pulumi.yaml)")
    return merged


# `resource.ParsePropertyPathStrict`: names joined by '.', `[<index>]` and `["<quoted name>"]`.
_PATH_SEGMENT = re.compile(r'\.?([^.\[\]"]+)|\[([0-9]+)\]|\["((?:[^"\\]|\\.)*)"\]')


def parse_path(text: str) -> list[str | int]:
    segments: list[str | int] = []
    position = 0
    while position < len(text):
        match = _PATH_SEGMENT.match(text, position)
        if not match or (match.group(1) is not None and position and text[position] != "."):
            raise StackFileError(f"invalid config key path {text!r} (e.g. rollout.maxSurge, app.publicPaths[0])")
        name, index, quoted = match.groups()
        segments.append(int(index) if index is not None else json.loads(f'"{quoted}"') if quoted is not None else name)
        position = match.end()
    if not segments or not isinstance(segments[0], str):
        raise StackFileError(f"invalid config key path {text!r}: the first segment must be a key name")
    return segments


def coerce(text: str) -> Any:
    """`object.go` `coerce`: with --path, "true"/"false" are booleans and base-10 integers without a leading 0 are
    numbers; everything else stays a string (floats included)."""
    if text in ("true", "false"):
        return text == "true"
    if len(text) > 1 and text[0] == "0":
        return text
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else text


def set_path(config: dict[str, Any], project: str, key: str, value: str) -> str:
    """`pulumi config set --path KEY VALUE` on a stack's config; returns the top-level key it changed. `key` without
    a namespace is the project's; one segment sets the top-level string, a longer path sets inside the object
    (created when absent, or when the top-level value is a plain string, as the CLI's COMPAT rule does)."""
    cut = min((i for i in (key.find("."), key.find("[")) if i > 0), default=len(key))
    top = key[:cut] if ":" in key[:cut] else f"{project}:{key[:cut]}"
    top = parse_key(top, "--set")
    namespace, name = top.split(":", 1)
    path = parse_path(name + key[cut:])
    full_key = f"{namespace}:{path[0]}"
    if len(path) == 1:
        config[full_key] = value  # top-level entries are always strings
        return full_key
    root = config.get(full_key)
    if is_secure(root):
        raise StackFileError(f"--set {key}: {full_key} is a secret; set it with `pulumi config set --secret`")
    root = copy.deepcopy(root) if isinstance(root, (dict, list)) else _container(path[1])
    _set_in(root, path[1:], coerce(value), [full_key])
    config[full_key] = root
    return full_key


def _container(segment: str | int) -> dict[str, Any] | list[Any]:
    return [] if isinstance(segment, int) else {}


def _set_in(node: dict[str, Any] | list[Any], path: list[str | int], value: Any, prefix: list[str]) -> None:
    head, rest = path[0], path[1:]
    where = ".".join([*prefix, str(head)])
    if isinstance(node, list):
        if not isinstance(head, int):
            raise StackFileError(f"--set: {'.'.join(prefix)}: key for an array must be an int")
        if head > len(node):
            raise StackFileError(f"--set: {where}: array index out of range")
        if head == len(node):
            node.append(None)
    elif not isinstance(head, str):
        raise StackFileError(f"--set: {'.'.join(prefix)}: key for a map must be a string")
    if not rest:
        node[head] = value  # type: ignore[index]
        return
    child = node[head]  # type: ignore[index]
    if child is None:
        child = _container(rest[0])
    elif not isinstance(child, (dict, list)):
        raise StackFileError(f"--set: {where}: expected {'an array' if isinstance(rest[0], int) else 'a map'}")
    node[head] = child  # type: ignore[index]
    _set_in(child, rest, value, [*prefix, str(head)])


def read_stack_config(
    stack: str, project_dir: Path = REPO_ROOT, overrides: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """The project name and the config the engine would hand the program: `Pulumi.<stack>.yaml`'s `config:`
    with `overrides` applied as `pulumi config set` would (None removes a key), then `Pulumi.yaml`'s project config
    merged in; read and refused with the CLI's rules (`harness/stack_config.py`), raising StackFileError."""
    stack_file = read_stack_file(stack, project_dir)
    config = dict(stack_file.config)
    for key, value in (overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return stack_file.project, effective_config(stack, stack_file, config)


def _engine_config_value(value: Any) -> str:
    # The CLI hands config to the language host as strings: objects JSON-encoded, scalars as written.
    return value if isinstance(value, str) else json.dumps(value)


def engine_config(values: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The config as the engine hands it to the program (strings), and its secret keys: `secure:` values, which
    only the CLI can decrypt, become a placeholder."""
    secret_keys = [k for k, v in values.items() if is_secure(v)]
    return {
        k: PLACEHOLDER_SECRET if k in secret_keys else _engine_config_value(v) for k, v in values.items()
    }, secret_keys
