"""Which `shipsafe:` keys produced which fields of an object: the `shipsafe.dev/config-keys` annotation.

The policy pack reads it (`policy/shipsafe_policies/framework.py`), so every violation names the setting that
produced the offending field. It travels with the object, so a real `pulumi preview --policy-pack` reports it too.
Field paths: `pod.<field>` is a field of the pod spec, `container.<field>` one of every container, any other path
starts at the object (`spec.minReadySeconds`, `data.PORT`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from components.config_keys import CONFIG_NAMESPACE

CONFIG_KEYS_ANNOTATION = "shipsafe.dev/config-keys"


def config_keys(fields: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """The annotation for `fields` (field path -> setting paths such as `rollout.minReadySeconds`)."""
    link = {field: [f"{CONFIG_NAMESPACE}:{key}" for key in keys] for field, keys in fields.items()}
    return {CONFIG_KEYS_ANNOTATION: json.dumps(link, sort_keys=True, separators=(",", ":"))}
