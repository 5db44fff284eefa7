"""Where images come from and how nodes pull them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .. import k8s
from ..framework import ADVISORY, Config, Finding, HasProps, Item, Section, Setting, item_by_item
from ..images import IMAGE_BUILDS, matches_prefix, parse_image
from ..k8s import workload_containers

SECTION = Section(__name__, "image", topic="Sec")


@SECTION.resource(
    "image-pull-policy",
    "imagePullPolicy is Always, or IfNotPresent for digest-pinned images.",
    "Pin the image by digest and use IfNotPresent, or use Always.",
    types=k8s.WORKLOADS,
    level=ADVISORY,
)
@item_by_item
def check_pull_policy(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            policy = container.get("imagePullPolicy")
            # The image (unknown in preview until it is built) matters only for IfNotPresent.
            if policy != "Always" and (
                policy != "IfNotPresent" or not parse_image(str(container.get("image") or "")).has_valid_digest
            ):
                yield f"{label}: use imagePullPolicy Always, or IfNotPresent with a digest-pinned image"


def _image_fields(res: HasProps) -> list[tuple[str, Mapping[str, Any], str]]:
    """(label, holder, key) of every image reference: each container's `image`, an image build's `imageName`."""
    if res.resource_type in k8s.WORKLOADS:
        return [(label, container, "image") for label, container in workload_containers(res)]
    return [("image build", res.props, "imageName")]


@SECTION.resource(
    "image-allowed-registries",
    "Images (run and built) come only from allow-listed registries.",
    "Push the image to the project registry, or add a reviewed mirror to allowedRegistries.",
    types={*k8s.WORKLOADS, *IMAGE_BUILDS},
    allowedRegistries=Setting(
        "array",
        ["docker.io/library/postgres", "docker.io/library/redis"],
        "registry/repository prefixes images may come from (the project registry is set per stack).",
        {"type": "string"},
        platform=True,
    ),
)
@item_by_item
def check_allowed_registries(res: HasProps, config: Config, item: Item) -> Iterator[Finding]:
    allowed = list(config["allowedRegistries"])
    for label, holder, key in _image_fields(res):
        with item():
            reference = holder.get(key)
            if isinstance(reference, str) and not matches_prefix(parse_image(reference), allowed):
                fields = ("container.image",) if res.resource_type in k8s.WORKLOADS else ("imageName",)
                message = f"{label}: {reference} is not from an allowed registry ({', '.join(allowed)})"
                yield Finding(message, fields, ("allowedRegistries",))
