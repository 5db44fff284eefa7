"""The platform floor: a production stack's policy config may not disable or lower the rules that carry a floor,
nor change a setting the floor does not leave free; no stack's config may lower the rules on the image build (the
image is built once and promoted as it is); no resource may waive a floor rule (tests/policy/test_waivers.py).

Refused by the pack itself over gRPC (the real CLI accepts any valid level and forwards every configured name,
known or not, to the pack's Configure: pulumi/pulumi `pkg/resource/analyzer/config.go` `applyConfig`), and offline
before the program runs (the offline preview, `shipsafe config validate`); a duplicate policy name in the config
file, which the engine's JSON parser hides, is refused offline with the file and the key named; an unknown one by
the pack, for every stack, and offline with the file named."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from deploy.context import DeployContext
from deploy.docs.policies import render_policy_docs, stack_levels
from deploy.errors import ShipsafeError
from deploy.exit_codes import ExitCode
from deploy.image_check import check_dockerfile
from deploy.offline import preview
from deploy.offline.commands import config_problems
from deploy.offline.report import print_report
from deploy.policy_link import pack_registry, read_policy_config
from harness.analyzer import PolicyPackError, PolicyPackProcess, load_policy_config, reconcile_config
from harness.stack_config import REPO_ROOT, policy_config_path
from tests.deploy.memory_stack import MemoryStacks
from tests.support.project_copy import copy_project

PROD_CONFIG = policy_config_path(REPO_ROOT, "prod")
FLOOR_RULES = [rule for rule in pack_registry().all_rules() if rule.floor is not None]
BOUNDED = [
    (rule.name, setting, bound - 1) for rule in FLOOR_RULES for setting, bound in rule.floor.at_least.items()
] + [(rule.name, setting, bound + 1) for rule in FLOOR_RULES for setting, bound in rule.floor.at_most.items()]


def _prod_config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(PROD_CONFIG.read_text())
    config.update(changes)
    return config


def test_the_floor_holds_the_rules_the_platform_promises() -> None:
    names = {rule.name for rule in FLOOR_RULES}
    assert {"pss-restricted-run-as-non-root", "docker-non-root-user"} <= names  # non-root
    assert {"pss-baseline-no-privileged", "pss-restricted-no-privilege-escalation"} <= names  # no privilege
    assert {"pss-baseline-no-added-capabilities", "pss-restricted-drop-all-capabilities"} <= names
    assert {"12f-config-no-plaintext-secret-env", "12f-config-no-sensitive-configmap"} <= names  # secrets
    assert "12f-admin-migration-release-image" in names  # migration before code
    assert {"rollout-zero-downtime", "rollout-pdb-coverage", "rollout-ready-traffic-only"} <= names
    assert all(rule.floor and rule.floor.why for rule in FLOOR_RULES)


# Under the real CLI: the pack refuses in Configure ------------------------------------------------------------


@pytest.fixture(scope="module")
def prod_pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(project="shipsafe", stack="prod") as pack:
        yield pack


@pytest.mark.parametrize("level", ["disabled", "advisory"])
def test_the_pack_refuses_a_lowered_floor_rule_in_configure(prod_pack: PolicyPackProcess, level: str) -> None:
    config = load_policy_config(PROD_CONFIG)
    config["docker-non-root-user"] = {"enforcementLevel": level}
    with pytest.raises(PolicyPackError) as refused:
        prod_pack.configure(config)
    message = str(refused.value)
    assert f"docker-non-root-user is {level}" in message
    assert "policy/config/prod.json" in message and "platform floor" in message


def test_the_pack_refuses_all_advisory_and_a_lowered_bound(prod_pack: PolicyPackProcess) -> None:
    with pytest.raises(PolicyPackError) as refused:
        prod_pack.configure({"all": {"enforcementLevel": "advisory"}})
    assert all(f"{rule.name} is advisory" in str(refused.value) for rule in FLOOR_RULES)
    config = load_policy_config(PROD_CONFIG)
    config["12f-concurrency-replica-range"] = {"minReplicas": 1, "maxReplicas": 10}
    with pytest.raises(PolicyPackError, match=r"12f-concurrency-replica-range\.minReplicas = 1 is below"):
        prod_pack.configure(config)
    prod_pack.configure(load_policy_config(PROD_CONFIG))  # the committed config stays within the floor
    assert prod_pack.levels["docker-non-root-user"] == "mandatory"


@pytest.mark.parametrize(
    ("config", "tags"),
    [({"shipsafe:environment": "production"}, {}), ({}, {"environment": "production"})],
    ids=["environment-setting", "stack-tag"],
)
def test_a_stack_whose_setting_or_tag_says_production_is_held_to_the_floor(
    config: dict[str, str], tags: dict[str, str]
) -> None:
    pack = PolicyPackProcess(project="shipsafe", stack="eu-west", stack_config=config, stack_tags=tags)
    with pack, pytest.raises(PolicyPackError, match="pss-baseline-no-privileged is disabled"):
        pack.configure({"pss-baseline-no-privileged": {"enforcementLevel": "disabled"}})


def test_a_stack_that_is_not_production_may_lower_a_floor_rule(pack: PolicyPackProcess) -> None:
    pack.configure({"pss-restricted-run-as-non-root": {"enforcementLevel": "advisory"}})
    assert pack.levels["pss-restricted-run-as-non-root"] == "advisory"
    pack.configure({"12f-disposability-probes": {"partOf": "other-app"}})
    pack.configure({})


# Build once, promote: the image build's floor holds every stack ------------------------------------------------

IMAGE_FLOOR = [rule.name for rule in FLOOR_RULES if rule.floor.every_stack]


def test_every_rule_on_the_image_build_with_a_floor_holds_it_in_every_stack() -> None:
    builds = {"docker:index/image:Image", "docker-build:index:Image"}
    on_builds = {rule.name for rule in FLOOR_RULES if rule.types and rule.types <= builds}
    assert on_builds == set(IMAGE_FLOOR)
    assert {"docker-non-root-user", "docker-no-baked-secrets", "docker-context-excludes-secrets"} <= on_builds


@pytest.mark.parametrize("rule", IMAGE_FLOOR)
def test_a_building_stack_may_not_lower_the_image_builds_floor(pack: PolicyPackProcess, tmp_path: Path, rule: str):
    """The review's repro: staging (which builds) disabling docker-no-baked-secrets passed, and prod judges no
    build, so a baked-in secret reached production."""
    staging = json.loads(policy_config_path(REPO_ROOT, "staging").read_text())
    path = tmp_path / "staging.json"
    path.write_text(json.dumps({**staging, rule: "disabled"}))
    with pytest.raises(PolicyPackError, match=f"{rule} is disabled, but .* every stack keeps it mandatory"):
        read_policy_config(path, production=False)
    with pytest.raises(PolicyPackError, match=f"{rule} is disabled, but .* every stack keeps it mandatory"):
        pack.configure({**load_policy_config(path)})
    pack.configure({})


def test_the_offline_preview_of_staging_refuses_a_disabled_image_floor_rule(tmp_path: Path) -> None:
    staging = json.loads(policy_config_path(REPO_ROOT, "staging").read_text())
    path = tmp_path / "staging.json"
    path.write_text(json.dumps({**staging, "docker-no-baked-secrets": "disabled"}))
    report = preview.offline_preview("staging", {}, policy_config=path, out=tmp_path / "out")
    assert report.exit_code == ExitCode.POLICY_PACK_FAILED
    assert "docker-no-baked-secrets is disabled" in _refusal(report)
    assert not (tmp_path / "out").exists(), "refused before the program ran"


def test_the_promoted_images_dockerfile_is_judged_with_prods_policy(project: Path) -> None:
    """Prod runs a prebuilt image, so its preview has no build: `shipsafe image check -s prod` (the PR workflow
    and `make policy-check` run it, tests/deploy/test_workflows.py) judges the Dockerfile the pipeline builds."""
    dockerfile = project / "app" / "Dockerfile"
    committed = dockerfile.read_text()
    secret = committed.replace("\nUSER ", "\nENV API_TOKEN=s3cr3t-abc\nUSER ", 1)
    assert secret != committed
    try:
        dockerfile.write_text(secret)
        checked = check_dockerfile(project, "prod", dockerfile, project / "app", "production")
    finally:
        dockerfile.write_text(committed)
    assert "docker-no-baked-secrets" in {v.policy for v in checked.report.mandatory_violations}
    assert checked.report.stack == "prod"


# Every setting of a floor rule is bounded, free with a reason, or fixed --------------------------------------


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, list):
        return [*value, "other"] if value else ["other"]
    return {**value, "other": "other"}


FIXED = [
    (rule.name, name, _changed(setting.default))
    for rule in FLOOR_RULES
    for name, setting in rule.settings.items()
    if name not in rule.floor.settings()
]


def test_every_floor_setting_is_bounded_free_with_a_reason_or_fixed() -> None:
    assert {(rule, setting) for rule, setting, _ in FIXED} >= {
        ("12f-disposability-probes", "partOf"),
        ("12f-concurrency-replica-range", "backingComponents"),
        ("12f-admin-migration-release-image", "migrationComponent"),
        ("pss-baseline-no-added-capabilities", "allowedCapabilities"),
    }
    assert all(why.strip() for rule in FLOOR_RULES for why in rule.floor.free.values())


@pytest.mark.parametrize(("rule", "setting", "value"), FIXED)
def test_every_fixed_floor_setting_changed_in_prod_is_refused_offline(tmp_path: Path, rule: str, setting: str, value):
    path = tmp_path / "prod.json"
    given = _prod_config()
    given[rule] = {**(given.get(rule) or {}), setting: value}
    path.write_text(json.dumps(given))
    with pytest.raises(PolicyPackError, match=rf"{rule}\.{setting} = .* differs from the platform floor's"):
        read_policy_config(path, production=True)


@pytest.mark.parametrize(
    ("rule", "settings"),
    [
        ("12f-disposability-probes", {"partOf": "nobody"}),
        ("12f-concurrency-replica-range", {"backingComponents": ["database", "cache", "worker"]}),
    ],
)
def test_the_pack_refuses_a_setting_that_exempts_every_workload_in_prod(
    prod_pack: PolicyPackProcess, rule: str, settings: dict[str, Any]
) -> None:
    config = load_policy_config(PROD_CONFIG)
    config[rule] = {**config.get(rule, {}), **settings}
    setting = next(iter(settings))
    with pytest.raises(PolicyPackError, match=rf"{rule}\.{setting} = .* differs from the platform floor's"):
        prod_pack.configure(config)
    prod_pack.configure(load_policy_config(PROD_CONFIG))


def test_a_free_floor_setting_may_change_in_prod(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    given = _prod_config(**{"12f-concurrency-replica-range": {"minReplicas": 3, "maxReplicas": 40}})
    path.write_text(json.dumps(given))
    assert read_policy_config(path, production=True).settings["12f-concurrency-replica-range"]["maxReplicas"] == 40


# Unknown names: the engine forwards them to Configure, where the pack refuses them ------------------------------


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_the_pack_refuses_an_unknown_policy_name_in_configure_for_every_stack(stack: str) -> None:
    with PolicyPackProcess(project="shipsafe", stack=stack) as pack:
        with pytest.raises(PolicyPackError) as refused:
            pack.configure(
                {
                    **load_policy_config(policy_config_path(REPO_ROOT, stack)),
                    "docker-non-root-usr": {"enforcementLevel": "disabled"},
                }
            )
        pack.configure(load_policy_config(policy_config_path(REPO_ROOT, stack)))  # "all" is no unknown name
    assert "unknown policy names: 'docker-non-root-usr' (did you mean 'docker-non-root-user'?)" in str(refused.value)
    assert f"policy/config/{stack}.json" in str(refused.value)


def test_the_engine_model_forwards_unknown_names_as_the_cli_does(pack: PolicyPackProcess) -> None:
    """pulumi/pulumi `config.go` `applyConfig` keeps every given name; `analyzer_plugin.go` `Configure` fails on a
    name without a level. The model sends what the engine sends, so the pack's refusal is what is tested."""
    reconciled = reconcile_config(
        pack.policies, {"all": {"enforcementLevel": "advisory"}, "k8s-typo": {"enforcementLevel": "disabled", "x": 1}}
    )
    assert reconciled["k8s-typo"] == {"enforcementLevel": "disabled", "x": 1}
    assert reconciled["all"] == {"enforcementLevel": "advisory"}
    with pytest.raises(PolicyPackError, match=r'k8s-typo: invalid enforcement level ""'):
        reconcile_config(pack.policies, {"k8s-typo": {"x": 1}})
    assert "k8s-typo" not in reconcile_config(pack.policies, {"k8s-typo": {}}), "an empty entry is dropped"


def test_esc_environments_are_refused_as_unsupported_not_as_a_policy(tmp_path: Path) -> None:
    path = tmp_path / "staging.json"
    path.write_text(json.dumps({"environments": ["shipsafe/staging"]}))
    with pytest.raises(PolicyPackError) as refused:
        read_policy_config(path)
    assert "environments: Pulumi ESC environments are not supported" in str(refused.value)
    assert "unknown policy" not in str(refused.value)


# Offline: the same refusal before the program runs ------------------------------------------------------------


@pytest.mark.parametrize("rule", [rule.name for rule in FLOOR_RULES])
def test_every_floor_rule_disabled_in_prod_is_refused_offline(tmp_path: Path, rule: str) -> None:
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(_prod_config(**{rule: "disabled"})))
    with pytest.raises(PolicyPackError, match=f"{rule} is disabled"):
        read_policy_config(path, production=True)
    if rule not in IMAGE_FLOOR:
        assert read_policy_config(path, production=False).levels[rule] == "disabled"


@pytest.mark.parametrize(("rule", "setting", "value"), BOUNDED)
def test_every_floor_bound_passed_in_prod_is_refused_offline(tmp_path: Path, rule: str, setting: str, value: float):
    path = tmp_path / "prod.json"
    given = _prod_config()
    given[rule] = {**(given.get(rule) or {}), setting: value}
    path.write_text(json.dumps(given))
    with pytest.raises(PolicyPackError, match=rf"{rule}\.{setting} = {value:g} is (below|above) the platform floor"):
        read_policy_config(path, production=True)


def test_an_added_capability_is_refused_in_prod(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(_prod_config(**{"pss-baseline-no-added-capabilities": {"allowedCapabilities": ["X"]}})))
    with pytest.raises(PolicyPackError, match="allowedCapabilities"):
        read_policy_config(path, production=True)


def test_the_offline_preview_refuses_a_disabled_floor_rule_before_the_program_runs(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    path.write_text(json.dumps(_prod_config(**{"docker-non-root-user": "disabled"})))
    report = preview.offline_preview("prod", {}, policy_config=path, out=tmp_path / "out")
    assert report.exit_code == ExitCode.POLICY_PACK_FAILED
    assert "docker-non-root-user is disabled" in _refusal(report)
    assert not (tmp_path / "out").exists(), "refused before the program ran"


def test_each_lowered_floor_rule_is_printed_once(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    lowered = {"docker-non-root-user": "disabled", "pss-baseline-no-privileged": "advisory"}
    path.write_text(json.dumps(_prod_config(**lowered)))
    report = preview.offline_preview("prod", {}, policy_config=path, out=tmp_path / "out")
    out = io.StringIO()
    console = Console(file=out, width=200)
    print_report(report, console, console)
    printed = out.getvalue()
    for rule in lowered:
        assert printed.count(rule) == 1, printed


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("floor"), commit=False)


def test_config_validate_refuses_a_lowered_floor_and_names_file_and_rule(project: Path) -> None:
    path = policy_config_path(project, "prod")
    committed = path.read_text()
    try:
        path.write_text(json.dumps(_prod_config(**{"pss-restricted-run-as-non-root": "advisory"})))
        problems = config_problems(project, "prod")
    finally:
        path.write_text(committed)
    assert any("pss-restricted-run-as-non-root is advisory" in p and "prod.json" in p for p in problems), problems


# The config file itself: duplicate and unknown names -----------------------------------------------------------


def test_a_duplicate_key_in_a_policy_config_is_refused_with_file_and_key_path(tmp_path: Path, project: Path) -> None:
    text = PROD_CONFIG.read_text().rstrip().removesuffix("}")
    duplicated = text + ',\n  "12f-concurrency-replica-range": { "minReplicas": 1, "minReplicas": 2 }\n}\n'
    path = tmp_path / "prod.json"
    path.write_text(duplicated)
    with pytest.raises(PolicyPackError) as refused:
        load_policy_config(path)
    assert str(path) in str(refused.value)
    assert "duplicate key 12f-concurrency-replica-range, 12f-concurrency-replica-range.minReplicas" in str(
        refused.value
    )
    committed = policy_config_path(project, "staging").read_text()
    try:
        policy_config_path(project, "staging").write_text(duplicated)
        assert any("duplicate key 12f-concurrency-replica-range" in p for p in config_problems(project, "staging"))
    finally:
        policy_config_path(project, "staging").write_text(committed)


def test_shipsafe_refuses_a_duplicate_key_or_lowered_floor_before_handing_the_file_to_the_real_cli(
    project: Path,
) -> None:
    path = policy_config_path(project, "prod")
    committed = path.read_text()
    path.write_text(committed.replace('"all": "mandatory",', '"all": "mandatory",\n  "all": "advisory",'))
    try:
        with pytest.raises(ShipsafeError) as refused:
            DeployContext(open_stack=MemoryStacks(), project_dir=project).policy_for("organization/shipsafe/prod")
    finally:
        path.write_text(committed)
    assert refused.value.exit_code is ExitCode.POLICY_PACK_FAILED
    assert "prod.json: duplicate key all" in refused.value.message
    path.write_text(json.dumps(_prod_config(**{"rollout-pdb-coverage": "disabled"})))
    try:
        with pytest.raises(ShipsafeError) as refused:
            DeployContext(open_stack=MemoryStacks(), project_dir=project).policy_for("organization/shipsafe/prod")
    finally:
        path.write_text(committed)
    assert "policy/config/prod.json: rollout-pdb-coverage is disabled" in refused.value.message


def test_an_unknown_policy_name_is_refused_with_the_nearest_real_name(tmp_path: Path) -> None:
    path = tmp_path / "staging.json"
    path.write_text(json.dumps({"rollout-zero-dowtime": "advisory"}))
    with pytest.raises(PolicyPackError) as refused:
        read_policy_config(path)
    assert "'rollout-zero-dowtime' (did you mean 'rollout-zero-downtime'?)" in str(refused.value)
    assert str(path) in str(refused.value)


def test_the_policy_reference_lists_the_floor_from_the_rules(pack: PolicyPackProcess) -> None:
    reference = render_policy_docs(pack.policies, stack_levels(pack.policies))
    floor = reference.split("#### The platform floor", 1)[1].split("####", 1)[0]
    assert all(f"`{rule.name}`" in floor for rule in FLOOR_RULES)
    assert "`minReplicas` >= 2" in floor
    rows = [line for line in reference.splitlines() if line.startswith("| `docker-healthcheck` ")]
    assert rows and "| - |" in rows[0], "a rule without a floor says so in its row"


def test_the_offline_preview_refuses_a_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "staging.json"
    staging = policy_config_path(REPO_ROOT, "staging").read_text()
    path.write_text(staging.replace("{\n", '{\n  "docker-healthcheck": "mandatory",\n', 1))
    report = preview.offline_preview("staging", {}, policy_config=path, out=tmp_path / "out")
    assert report.exit_code == ExitCode.POLICY_PACK_FAILED
    assert f"{path}: duplicate key docker-healthcheck" in _refusal(report)


def _refusal(report: preview.Report) -> str:
    assert report.error is not None, "refused"
    return "\n".join([report.error.message, *report.error.problems])
