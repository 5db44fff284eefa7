"""The platform floor: the rules a production stack's policy config may not disable or lower.

Each rule declares its own floor (`framework.Floor`); this module judges a configuration against them, in the
pack and offline (`deploy.policy_link` calls `lowered` before the program runs).

Under the real CLI only the pack can refuse. The engine reconciles `--policy-pack-config` with the pack's schemas
and hands every policy's level and properties to one Configure call (pulumi/pulumi `pkg/engine/update.go`
`LoadLocalPolicyPackAnalyzers`: `ReconcilePolicyPackConfig`, then `analyzer.Configure`), accepting any valid level
and dropping policy names the pack does not have; pulumi-policy 1.21 stores what it is sent without a look
(`policy.py` `_PolicyAnalyzerServicer.Configure`). So `refuse_lowered_floor` checks the request first and aborts
the RPC: `pkg/resource/plugin/analyzer_plugin.go` `Configure` returns the gRPC error (`rpcerror.Convert`), and
`LoadLocalPolicyPackAnalyzers` stops with "configuring policy pack ...: <message>" while loading the analyzers,
before the program runs. The engine parses the config file itself (Go `encoding/json`: a duplicate key keeps its
last value silently), so a duplicate is invisible here; the offline path refuses it (`harness.local_files`).

Which stacks are production: `ConfigureStack`, which the engine sends before Configure (`analyzer_plugin.go`
`NewPolicyAnalyzer`), carries the stack's name, its tags and its config; a stack whose name, tags or
`shipsafe:environment` say production is held to the floor. Without it (an engine that skips ConfigureStack) the
pack reads `PULUMI_STACK` and `PULUMI_CONFIG`, which the engine sets for it (`analyzer_plugin.go` `constructEnv`).
"""

from __future__ import annotations

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
    assert rule.floor is not None
    value = {**rule.config({}), **given}
    for name, bound in rule.floor.at_least.items():
        if isinstance(value[name], int | float) and value[name] < bound:
            yield f"{rule.name}.{name} = {_number(value[name])} is below the platform floor's {_number(bound)}"
    for name, bound in rule.floor.at_most.items():
        if isinstance(value[name], int | float) and value[name] > bound:
            yield f"{rule.name}.{name} = {_number(value[name])} is above the platform floor's {_number(bound)}"
    for name in rule.floor.fixed:
        default = rule.settings[name].default
        if value[name] != default:
            shown, floor = json.dumps(value[name]), json.dumps(default)
            yield f"{rule.name}.{name} = {shown} differs from the platform floor's {floor}"


def lowered(
    rules: Iterable[Rule], levels: Mapping[str, str], properties: Mapping[str, Mapping[str, Any]], where: str
) -> list[str]:
    """Each floor rule the configuration lowers (its level below the rule's, or a bounded setting past its
    bound), naming the rule and `where` the configuration comes from."""
    problems = []
    for rule in rules:
        if rule.floor is None:
            continue
        level = levels.get(rule.name, str(rule.level.value))
        if _RANK.get(level, 0) < _RANK[str(rule.level.value)]:
            problems.append(
                f"{where}: {rule.name} is {level}, but it is part of the platform floor and a production stack "
                f"keeps it {rule.level.value} ({rule.floor.why})"
            )
        problems += [
            f"{where}: {problem}, and a production stack may not lower it ({rule.floor.why})"
            for problem in _lowered_settings(rule, properties.get(rule.name, {}))
        ]
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
        if is_production(stack, config, tags):
            levels = {
                name: analyzer_pb2.EnforcementLevel.Name(entry.enforcementLevel).lower()
                for name, entry in request.policyConfig.items()
            }
            properties = {
                name: json_format.MessageToDict(entry.properties) for name, entry in request.policyConfig.items()
            }
            problems = lowered(rules, levels, properties, config_file(stack))
            if problems:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "\n".join(problems))
        return configure(self, request, context)

    servicer.Configure = configure_within_floor  # type: ignore[method-assign]
    servicer.ConfigureStack = configure_stack_remembering  # type: ignore[method-assign,assignment]
