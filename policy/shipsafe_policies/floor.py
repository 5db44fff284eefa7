"""The platform floor: the rules a production stack's policy config may not disable or lower (and the rules on the
image build, which no stack's config may lower: the image any stack builds is the one promoted to production).

Each rule declares its own floor (`framework.Floor`); this module judges a configuration against them, in the
pack and offline (`deploy.policy_link` calls `lowered` before the program runs).

Under the real CLI only the pack can refuse. The engine reconciles `--policy-pack-config` with the pack's schemas
and hands the result to one Configure call (pulumi/pulumi `pkg/engine/update.go` `LoadLocalPolicyPackAnalyzers`:
`ReconcilePolicyPackConfig`, then `analyzer.Configure`), accepting any valid level. A name the pack has no policy
for is not dropped: `applyConfig` (`pkg/resource/analyzer/config.go:337-371`) adds every given name, "all" too, to
the result, so it reaches Configure with its level and properties (a name given only properties has level "" and
the CLI itself fails: `invalid enforcement level ""`, `pkg/resource/plugin/analyzer_plugin.go:622-624`).
pulumi-policy 1.21 stores what it is sent without a look (`policy.py` `_PolicyAnalyzerServicer.Configure`), so a
typo such as "docker-non-root-usr": "disabled" would pass silently. `refuse_lowered_floor` therefore checks the
request first and aborts the RPC on an unknown name (every stack, with the nearest real name) or a lowered floor:
`analyzer_plugin.go` `Configure` returns the gRPC error (`rpcerror.Convert`), and `LoadLocalPolicyPackAnalyzers`
stops with "configuring policy pack ...: <message>" while loading the analyzers, before the program runs. The
engine parses the config file itself (Go `encoding/json`: a duplicate key keeps its last value silently), so a
duplicate is invisible here; the offline path refuses it (`harness.local_files`).

Which stacks are production: `ConfigureStack`, which the engine sends before Configure (`analyzer_plugin.go`
`NewPolicyAnalyzer`), carries the stack's name, its tags and its config; a stack whose name, tags or
`shipsafe:environment` say production is held to the floor. Without it (an engine that skips ConfigureStack) the
pack reads `PULUMI_STACK` and `PULUMI_CONFIG`, which the bundled Python language host sets for a policy pack it
runs (pulumi/pulumi `sdk/python/cmd/pulumi-language-python/main.go` `RunPlugin`: the pack's directory as working
directory at 1639, the stack's name and config in the environment at 1667-1674).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import grpc
import pulumi_policy.policy as sdk
from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

from .framework import Floor, Rule

PRODUCTION_WORDS = frozenset({"prod", "production", "prd"})
"""A stack name part (split at anything but letters and digits), tag value or environment that means production."""
ENVIRONMENT_KEY = "shipsafe:environment"
"""The stack setting that says which environment the stack is (`components/settings.py` `Environment`)."""
_RANK = {"disabled": 0, "advisory": 1, "mandatory": 2, "remediate": 2}

# Why each group of rules is in the floor (the policy reference prints it beside each rule).
NON_ROOT = Floor("a root process turns any app bug into control of the container and a step towards the node")
NO_PRIVILEGE = Floor("privilege, its escalation or added capabilities undo the container boundary")
SECRETS = Floor("a secret outside a Secret reaches logs, the API's readers and every copy of the manifests")
MIGRATION_FIRST = Floor("new code on an old schema, or a migration that retries blindly, loses or corrupts data")
ROLLOUT = Floor("a deploy or a node drain without these takes the service down or sends traffic to unready pods")
_PROJECT_DIR = (
    "where the project lies from the pack (an app repository's own layout); the rule reads the Dockerfile the "
    "build names under it, and one it cannot read is itself a violation"
)
IMAGE_NON_ROOT = Floor(NON_ROOT.why, free={"projectDir": _PROJECT_DIR}, every_stack=True)
IMAGE_SECRETS = Floor(SECRETS.why, free={"projectDir": _PROJECT_DIR}, every_stack=True)
ALL = "all"
"""The config name that sets every policy's level (the engine forwards it to Configure too)."""


def config_file(stack: str) -> str:
    """How the pack names the policy config it was handed (the engine does not say which file it read)."""
    return f"the policy config of stack {stack} (shipsafe passes policy/config/{stack}.json as --policy-pack-config)"


def is_production(stack: str, config: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    """The stack's name, one of its tags or its `shipsafe:environment` says production."""
    words = set(re.split(r"[^a-z0-9]+", stack.lower()))
    values = {str(config.get(ENVIRONMENT_KEY, "")).strip().lower(), *(v.strip().lower() for v in tags.values())}
    return bool((words | values) & PRODUCTION_WORDS)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _lowered_settings(rule: Rule, given: Mapping[str, Any]) -> Iterator[str]:
    """Each setting past its bound, and each setting the floor neither bounds nor frees that differs from its
    default (`partOf: nobody` would exempt every workload without lowering the level)."""
    assert rule.floor is not None
    value = {**rule.config({}), **given}
    for name, bound in rule.floor.at_least.items():
        if isinstance(value[name], int | float) and value[name] < bound:
            yield f"{rule.name}.{name} = {_number(value[name])} is below the platform floor's {_number(bound)}"
    for name, bound in rule.floor.at_most.items():
        if isinstance(value[name], int | float) and value[name] > bound:
            yield f"{rule.name}.{name} = {_number(value[name])} is above the platform floor's {_number(bound)}"
    for name in [name for name in rule.settings if name not in rule.floor.settings()]:
        default = rule.settings[name].default
        if value[name] != default:
            shown, floor = json.dumps(value[name]), json.dumps(default)
            yield f"{rule.name}.{name} = {shown} differs from the platform floor's {floor}"


def holds(rule: Rule, production: bool) -> bool:
    """The rule's floor holds this stack: production holds every floor, any stack the floor of an image build."""
    return rule.floor is not None and (production or rule.floor.every_stack)


def lowered(
    rules: Iterable[Rule],
    levels: Mapping[str, str],
    properties: Mapping[str, Mapping[str, Any]],
    where: str,
    *,
    production: bool = True,
) -> list[str]:
    """Each floor rule the configuration lowers (its level below the rule's, a bounded setting past its bound or
    a fixed setting changed), naming the rule and `where` the configuration comes from; outside `production`
    only the floors held in every stack."""
    problems = []
    for rule in rules:
        if rule.floor is None or not holds(rule, production):
            continue
        who = "every stack" if rule.floor.every_stack else "a production stack"
        why = rule.floor.why + (
            "; the image any stack builds is the one promoted to production" if rule.floor.every_stack else ""
        )
        level = levels.get(rule.name, str(rule.level.value))
        if _RANK.get(level, 0) < _RANK[str(rule.level.value)]:
            problems.append(
                f"{where}: {rule.name} is {level}, but it is part of the platform floor and {who} "
                f"keeps it {rule.level.value} ({why})"
            )
        problems += [
            f"{where}: {problem}, and {who} may not lower it ({why})"
            for problem in _lowered_settings(rule, properties.get(rule.name, {}))
        ]
    return problems


def unknown_names(names: Iterable[str], rules: Iterable[Rule]) -> list[str]:
    """Each configured name the pack has no policy for, with the nearest real name (`all` is not a policy, but
    sets every level)."""
    known = sorted(rule.name for rule in rules)
    problems = []
    for name in sorted(set(names) - set(known) - {ALL}):
        nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        problems.append(f"{name!r}" + (f" (did you mean {nearest[0]!r}?)" if nearest else ""))
    return problems


def _stack_from_environment() -> tuple[str, dict[str, str]]:
    try:
        config = json.loads(os.environ.get("PULUMI_CONFIG") or "{}")
    except ValueError:
        config = {}
    return os.environ.get("PULUMI_STACK", ""), config if isinstance(config, dict) else {}


def refuse_lowered_floor(rules: list[Rule]) -> None:
    """Make the pack's Configure refuse a production configuration that lowers the floor (see the module doc)."""
    servicer = sdk._PolicyAnalyzerServicer
    configure, configure_stack = servicer.Configure, servicer.ConfigureStack

    def configure_stack_remembering(self: Any, request: Any, context: Any) -> Any:
        self.shipsafe_stack = (request.stack, dict(request.config), dict(request.tags))
        return configure_stack(self, request, context)

    def configure_within_floor(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        stack, config, tags = getattr(self, "shipsafe_stack", None) or (*_stack_from_environment(), {})
        where = config_file(stack)
        unknown = unknown_names(request.policyConfig, rules)
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{where}: unknown policy names: {', '.join(unknown)}")
        levels = {
            name: analyzer_pb2.EnforcementLevel.Name(entry.enforcementLevel).lower()
            for name, entry in request.policyConfig.items()
        }
        properties = {name: json_format.MessageToDict(entry.properties) for name, entry in request.policyConfig.items()}
        problems = lowered(rules, levels, properties, where, production=is_production(stack, config, tags))
        if problems:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "\n".join(problems))
        return configure(self, request, context)

    servicer.Configure = configure_within_floor  # type: ignore[method-assign]
    servicer.ConfigureStack = configure_stack_remembering  # type: ignore[method-assign,assignment]
