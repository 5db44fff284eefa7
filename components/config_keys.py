"""The `shipsafe:` config keys as the program receives them: every key known, every secret a secret.

Under the Pulumi CLI the program sees only what the engine hands it: `pulumi-language-python-exec` passes the
merged stack and project config to `pulumi.runtime.set_all_config(PULUMI_CONFIG, PULUMI_CONFIG_SECRET_KEYS)`
(pulumi/pulumi `sdk/python/cmd/pulumi-language-python-exec`), one JSON-encoded string per top-level key, and
`pulumi.runtime.is_config_secret` says which were `secure:` values. The offline harness hands config over the same
way, so these checks hold under both. Duplicate keys and YAML syntax are gone by then: only the harness's reader
of the stack file (`harness/stack_config.py`) can refuse those.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, get_args, get_origin

from pulumi.runtime import config as runtime_config
from pydantic import BaseModel

CONFIG_NAMESPACE = "shipsafe"
# Top-level keys the program reads with `require_secret`, and when; a plain-text value here is refused.
SECRET_KEYS = {
    "registryPassword": "`registry.mode` is `external`: the registry's password",
    "postgresUrl": "`postgres.mode` is `external`: its connection URL",
    "redisUrl": "`redis.mode` is `external`: its connection URL",
}
# Stands for a key the user chooses, such as a workload name, in suggested paths.
ANY_NAME = "<name>"


def program_config() -> dict[str, str]:
    """Every config key and value the engine handed this program (pulumi `runtime/config.py` `get_config` reads
    the same two sources: the values set for the run, then the `PULUMI_CONFIG` environment bag)."""
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = get_args(annotation) or (annotation,)
    return next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)


def child_model(model: type[BaseModel], name: str) -> tuple[type[BaseModel] | None, bool]:
    """The model under field `name` (by alias) and whether it is a mapping of user-named entries."""
    for field_name, field in model.model_fields.items():
        if (field.alias or field_name) == name:
            if get_origin(field.annotation) is dict:
                return _model_of(get_args(field.annotation)[1]), True
            return _model_of(field.annotation), False
    return None, False


def model_at(root: type[BaseModel], path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The settings model at a dotted path (entries of user-named mappings skipped), or None."""
    model: type[BaseModel] | None = root
    parts = list(path)
    while parts and model is not None:
        model, named = child_model(model, str(parts.pop(0)))
        if named and parts:
            parts.pop(0)
    return model


def field_names(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def field_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every settable dotted path of the model, user-named entries written as `<name>`."""
    for name in field_names(model):
        path = f"{prefix}{name}"
        yield path
        child, named = child_model(model, name)
        if child is not None:
            yield from field_paths(child, f"{path}.{ANY_NAME}." if named else f"{path}.")


def did_you_mean(name: str, parent: str, siblings: list[str], root: type[BaseModel]) -> str:
    """A suggestion for an unknown key under `parent` (a dotted prefix, e.g. `rollout.`): a setting of exactly that
    name elsewhere in the model, else a close sibling, else a close name elsewhere."""
    leaves = {path.rsplit(".", 1)[-1]: path for path in field_paths(root)}
    if name in leaves and name not in siblings:
        return f"; did you mean {CONFIG_NAMESPACE}:{leaves[name]}?"
    close = difflib.get_close_matches(name, siblings, n=1)
    if close:
        return f"; did you mean {CONFIG_NAMESPACE}:{parent}{close[0]}?"
    leaf = difflib.get_close_matches(name, list(leaves), n=1)
    return f"; did you mean {CONFIG_NAMESPACE}:{leaves[leaf[0]]}?" if leaf else ""


def key_problems(config: Mapping[str, str], root: type[BaseModel], is_secret: Callable[[str], bool]) -> list[str]:
    """Problems with the program's `shipsafe:` keys themselves: unknown keys, and secrets written in plain text.
    Secret values are never echoed."""
    prefix = f"{CONFIG_NAMESPACE}:"
    known = field_names(root)
    problems = []
    for key in sorted(k for k in config if k.startswith(prefix)):
        name = key.removeprefix(prefix)
        if name in SECRET_KEYS:
            if not is_secret(key):
                problems.append(
                    f"{key} is written in plain text: it must be a secret (`pulumi config set --secret {key} ...` "
                    "stores it as a `secure:` value)"
                )
        elif name not in known:
            problems.append(f"{key} is not a known setting{_unknown_hint(name, root)}")
    return problems


def _unknown_hint(name: str, root: type[BaseModel]) -> str:
    head = name.split(".", 1)[0].split("[", 1)[0]
    if head != name and head in field_names(root):
        # `pulumi config set shipsafe:rollout.maxSurge 2` without --path sets a literal top-level key.
        return f"; to set a nested value use `pulumi config set --path {CONFIG_NAMESPACE}:{name} ...`"
    return did_you_mean(name, "", [*field_names(root), *SECRET_KEYS], root)
