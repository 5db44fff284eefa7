"""`shipsafe stack add NAME --from SOURCE`: a new stack as a copy of an existing one, stack file and policy config.

The copy is the text of `Pulumi.<SOURCE>.yaml` (comments and order kept) with its own namespace, so two stacks of one
cluster never share objects. What is bound to SOURCE's encryption is left out: `encryptionsalt` and `encryptedkey`
belong to SOURCE's secrets provider state (pulumi/pulumi `pkg/secrets/passphrase/manager.go`,
`pkg/secrets/cloud/manager.go`), and a `secure:` value is ciphertext only SOURCE's key opens, which `pulumi stack init`
creates anew for NAME. Those keys are named, to be set again with `pulumi config set --secret -s NAME`.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.settings import CONFIG_NAMESPACE
from deploy.errors import ExitCode, ShipsafeError
from deploy.mirror import set_config_value
from harness.stack_config import SECURE, policy_config_path, stack_names

# pulumi/pulumi `sdk/go/common/tokens/names.go` (`ValidateStackName`): "a stack name may only contain alphanumeric,
# hyphens, underscores, or periods", at most 100 characters.
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
PROVIDER_STATE_KEYS = ("encryptionsalt", "encryptedkey")


@dataclass(frozen=True)
class NewStack:
    name: str
    stack_file: Path
    policy_config: Path
    namespace: str
    secrets_to_set: list[str]
    """Config keys whose `secure:` values were left out."""
    mentions_of_source: list[str]
    """Lines of the new stack file that still name the source stack (a host, a comment): to review."""


def add_stack(project_dir: Path, name: str, source: str) -> NewStack:
    """Writes `Pulumi.<name>.yaml` and `policy/config/<name>.json` from `source`'s; checks everything first, so a
    refusal writes nothing."""
    known = stack_names(project_dir)
    if not STACK_NAME.fullmatch(name):
        raise ShipsafeError(
            f"stack name {name!r} is not allowed: at most 100 letters, digits, '-', '_' or '.'", ExitCode.USAGE
        )
    target_file, target_policy = project_dir / f"Pulumi.{name}.yaml", policy_config_path(project_dir, name)
    if name in known or target_policy.exists():
        existing = target_file if name in known else target_policy
        raise ShipsafeError(f"stack {name} exists already ({existing.name}): choose another name", ExitCode.USAGE)
    if source not in known:
        raise ShipsafeError(f"--from {source}: no such stack (stacks: {', '.join(known) or 'none'})", ExitCode.USAGE)
    source_policy = policy_config_path(project_dir, source)
    if not source_policy.is_file():
        raise ShipsafeError(f"--from {source}: its policy config {source_policy} is missing", ExitCode.FAILED)
    text, secrets = _without_source_encryption((project_dir / f"Pulumi.{source}.yaml").read_text(), source)
    app = (yaml.safe_load(text).get("config") or {}).get(f"{CONFIG_NAMESPACE}:app") or {}
    namespace = f"{app.get('name', CONFIG_NAMESPACE)}-{name}"
    text = set_config_value(text, f"{CONFIG_NAMESPACE}:app", "namespace", namespace)
    target_file.write_text(text)
    shutil.copyfile(source_policy, target_policy)
    mentions = [line.strip() for line in text.splitlines() if re.search(rf"\b{re.escape(source)}\b", line, re.I)]
    return NewStack(name, target_file, target_policy, namespace, secrets, mentions)


def _without_source_encryption(text: str, source: str) -> tuple[str, list[str]]:
    """The stack file's text without its secrets provider state and top-level `secure:` values, and their keys."""
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode):
        raise ShipsafeError(f"Pulumi.{source}.yaml is not a mapping", ExitCode.CONFIG_ERROR)
    drop: list[yaml.Node] = []
    secrets: list[str] = []
    for key_node, value_node in root.value:
        if key_node.value in PROVIDER_STATE_KEYS:
            drop.append(key_node)
        if key_node.value == "config" and isinstance(value_node, yaml.MappingNode):
            for config_key, config_value in value_node.value:
                if _is_secure(config_value):
                    drop.append(config_key)
                    secrets.append(str(config_key.value))
                elif _holds_secure(config_value):
                    raise ShipsafeError(
                        f"Pulumi.{source}.yaml: {config_key.value} holds a secure value inside an object; copy "
                        "that stack by hand (`pulumi config cp`)",
                        ExitCode.CONFIG_ERROR,
                    )
    lines = text.splitlines(keepends=True)
    for key_node in sorted(drop, key=lambda node: node.start_mark.line, reverse=True):
        del lines[key_node.start_mark.line : _entry_end(root, key_node, lines)]
    return "".join(lines), secrets


def _is_secure(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode) and [key.value for key, _ in node.value] == [SECURE]


def _holds_secure(node: yaml.Node) -> bool:
    if _is_secure(node):
        return True
    if isinstance(node, yaml.MappingNode):
        return any(_holds_secure(value) for _, value in node.value)
    return isinstance(node, yaml.SequenceNode) and any(_holds_secure(item) for item in node.value)


def _entry_end(root: yaml.MappingNode, key_node: yaml.Node, lines: list[str]) -> int:
    """The line after the entry `key_node` starts (its value may span several lines). A block collection ends
    where the next token starts, a scalar right after its text."""
    for mapping in (root, *(value for _, value in root.value if isinstance(value, yaml.MappingNode))):
        for key, value in mapping.value:
            if key is key_node:
                end = value.end_mark
                ends_inside_line = end.line < len(lines) and lines[end.line][: end.column].strip()
                return end.line + 1 if ends_inside_line else end.line
    raise AssertionError("the key is in the document")
