"""X Dev/prod parity: backing services run the versions dev and CI pin."""

from __future__ import annotations

from collections.abc import Iterator

from .. import k8s
from ..framework import Config, HasProps, Item, Section, Setting, item_by_item
from ..k8s import workload_containers

SECTION = Section(__name__, "12f-parity", topic="X Dev/prod parity")


@SECTION.resource(
    "12f-parity-backing-versions",
    "Backing services run exactly the versions dev and CI pin.",
    "Set shipsafe:postgres/redis image to the pinned reference (and change both together).",
    types=k8s.WORKLOADS,
    fields=("container.image",),
    images=Setting(
        "object",
        {
            "database": "docker.io/library/postgres:15.18-bookworm",
            "cache": "docker.io/library/redis:7.0.15-bookworm",
        },
        "Image per component label, as pinned in compose and CI.",
        platform=True,
    ),
)
@item_by_item
def check_dev_prod_parity(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    pinned = dict(config["images"])
    component = k8s.labels(res).get(k8s.COMPONENT)
    if component not in pinned:
        return
    for label, container in workload_containers(res):
        with item():
            if container.get("image") != pinned[component]:
                yield (
                    f"{label}: {component} runs {container.get('image')}, but dev/CI pin {pinned[component]}; "
                    "use the same version everywhere"
                )
