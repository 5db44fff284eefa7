"""Every `shipsafe.dev/config-keys` annotation the program renders names settings a user can set: a violation that
names a key which does not exist would send the user looking for it."""

from __future__ import annotations

import json

import pytest

from components.config_keys import ANY_NAME, CONFIG_NAMESPACE, SECRET_KEYS, field_paths
from components.config_link import CONFIG_KEYS_ANNOTATION
from components.settings import Settings
from harness.recording import Recording

SETTABLE = {
    tuple(parts[:end])
    for parts in (path.split(".") for path in field_paths(Settings))
    for end in range(1, len(parts) + 1)
} | {(key,) for key in SECRET_KEYS}
"""Every settable path of the settings models and each object above one, user-named entries as `<name>`."""


def _settable(key: str) -> bool:
    if not key.startswith(f"{CONFIG_NAMESPACE}:"):
        return False
    parts = tuple(key.removeprefix(f"{CONFIG_NAMESPACE}:").split("."))
    return any(
        len(path) == len(parts) and all(p in (part, ANY_NAME) for p, part in zip(path, parts, strict=True))
        for path in SETTABLE
    )


def _linked_keys(recording: Recording) -> dict[str, set[str]]:
    """Each annotated object's name with every key its annotation names."""
    found = {}
    for resource in recording:
        metadata = resource.inputs.get("metadata")
        annotations = (metadata or {}).get("annotations") or {} if isinstance(metadata, dict) else {}
        if CONFIG_KEYS_ANNOTATION in annotations:
            link = json.loads(annotations[CONFIG_KEYS_ANNOTATION])
            found[resource.name] = {key for keys in link.values() for key in keys}
    return found


def test_every_rendered_config_key_names_a_settable_path(recording: Recording) -> None:
    linked = _linked_keys(recording)
    assert len(linked) >= 10, f"too few annotated objects to be the whole stack: {sorted(linked)}"
    unknown = {name: sorted(k for k in keys if not _settable(k)) for name, keys in linked.items()}
    assert not {name: keys for name, keys in unknown.items() if keys}


@pytest.mark.parametrize(
    ("key", "settable"),
    [
        ("shipsafe:rollout.minReadySeconds", True),
        ("shipsafe:workloads.web.replicas", True),
        ("shipsafe:registryPassword", True),
        ("shipsafe:rollout.minReadySecond", False),
        ("shipsafe:workloads.web", True),
        ("shipsafe:workloads.web.replicas.x", False),
        ("other:rollout.minReadySeconds", False),
    ],
)
def test_a_key_is_settable_only_as_the_models_define_it(key: str, settable: bool) -> None:
    assert _settable(key) is settable
