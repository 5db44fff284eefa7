"""Facts the pack and the project both need, written on both sides and held equal here.

The pack runs in its own virtualenv under the real CLI (PulumiPolicy.yaml) and cannot import `components`, the
engine model or the tool, so each such fact is written twice: once where the program (or the engine model) uses it,
once in the pack. A test per fact fails when one side changes alone."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest

from components import config_link, migration, network, pods
from components.backing_service import POSTGRES, REDIS
from deploy.policy_link import pack_registry
from harness.analyzer import WAIVER_REPORT
from harness.recording import DOCKER_IMAGE

BACKING_COMPONENTS = [POSTGRES.component, REDIS.component]


@pytest.fixture(scope="module")
def pack() -> ModuleType:
    return pack_registry()


def _pack_module(name: str) -> Any:
    pack_registry()  # puts the pack's folder on the path
    return importlib.import_module(f"shipsafe_policies.{name}")


def _defaults(pack: ModuleType, setting: str) -> list[Any]:
    """The default of `setting` in every rule that has it (at least one)."""
    found = [rule.settings[setting].default for rule in pack.all_rules() if setting in rule.settings]
    assert found, f"no rule of the pack has a setting {setting}"
    return found


def test_the_config_keys_annotation_is_the_one_the_pack_reads() -> None:
    assert _pack_module("framework").CONFIG_KEYS_ANNOTATION == config_link.CONFIG_KEYS_ANNOTATION


def test_the_label_keys_are_the_ones_the_pack_reads() -> None:
    k8s = _pack_module("k8s")
    written = pods.labels("notes", "web")
    assert written[k8s.COMPONENT] == "web"
    assert written[k8s.PART_OF] == pods.PART_OF
    assert network.COMPONENT_LABEL == k8s.COMPONENT


def test_the_pack_marks_the_stacks_objects_by_the_part_of_value_the_components_write(pack: ModuleType) -> None:
    assert set(map(str, _defaults(pack, "partOf"))) == {pods.PART_OF}


@pytest.mark.parametrize("setting", ["backingComponents", "imageUidComponents"])
def test_the_pack_knows_the_backing_services_by_their_component_labels(pack: ModuleType, setting: str) -> None:
    assert all(default == BACKING_COMPONENTS for default in _defaults(pack, setting))


def test_the_pinned_backing_images_are_keyed_by_the_component_labels(pack: ModuleType) -> None:
    assert all(sorted(default) == sorted(BACKING_COMPONENTS) for default in _defaults(pack, "images"))


def test_the_migration_job_is_found_by_its_component_label(pack: ModuleType) -> None:
    assert set(_defaults(pack, "migrationComponent")) == {migration.COMPONENT}


def test_the_waiver_report_is_the_rule_the_engine_model_lists_waivers_under(pack: ModuleType) -> None:
    assert WAIVER_REPORT in {rule.name for rule in pack.all_rules()}


def test_the_image_build_type_of_the_engine_model_is_one_the_pack_knows() -> None:
    assert DOCKER_IMAGE in _pack_module("images").IMAGE_BUILDS
