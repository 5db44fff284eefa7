"""I Codebase and V Build, release, run: one immutable image per release, built once, promoted by digest."""

from __future__ import annotations

from collections.abc import Iterator

from .. import k8s
from ..framework import ADVISORY, Config, HasProps, Item, Section, Setting, item_by_item
from ..images import IMAGE_BUILDS, matches_prefix, parse_image
from ..k8s import workload_containers

SECTION = Section(__name__, "12f-build", topic="V Build/release/run")

OWN_REGISTRIES = Setting(
    "array",
    [],
    "registry/repository prefixes of the app's own images (set per stack): these need tag and digest.",
    {"type": "string"},
    platform=True,
)


@SECTION.resource(
    "12f-build-immutable-image",
    "Images are immutable references: own images tag+digest, third-party a full-version tag.",
    "Deploy <registry>/<app>:<git-sha>@sha256:<digest>; pin third-party tags like 15.18-bookworm.",
    types=k8s.WORKLOADS,
    topic="I Codebase; V Build/release/run",
    fields=("container.image",),
    ownRegistries=OWN_REGISTRIES,
)
@item_by_item
def check_immutable_image(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    own = list(config["ownRegistries"])
    for label, container in workload_containers(res):
        with item():  # the app image is unknown in preview until it is built
            reference = str(container.get("image") or "")
            image = parse_image(reference)
            if image.tag_is_mutable:
                yield f"{label}: {reference or 'no image'} is untagged or latest; deploy <app>:<sha>@sha256:<digest>"
            elif matches_prefix(image, own):
                if not image.has_valid_digest:
                    yield f"{label}: {reference} lacks @sha256:<digest>; wire the build's repo digest into the pod spec"
            elif not image.tag_is_full_version:
                yield f"{label}: {reference} floats with upstream; pin a full version tag such as 15.18-bookworm"


@SECTION.resource(
    "12f-build-third-party-digest",
    "Third-party images also carry an @sha256 digest (advisory: public digests can't be resolved offline).",
    "Mirror the image into the project registry and pin its digest.",
    types=k8s.WORKLOADS,
    topic="V Build/release/run; X Dev/prod parity",
    level=ADVISORY,
    fields=("container.image",),
    ownRegistries=OWN_REGISTRIES,
)
@item_by_item
def check_third_party_digest(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    own = list(config["ownRegistries"])
    for label, container in workload_containers(res):
        with item():
            image = parse_image(str(container.get("image") or ""))
            if not matches_prefix(image, own) and not image.has_valid_digest:
                yield f"{label}: {image.name}:{image.tag} has no @sha256 digest; mirror it and pin the digest"


@SECTION.resource(
    "12f-build-once",
    "Stacks that promote releases build no images: build once, promote the digest.",
    "Set shipsafe:imageSource to prebuilt with the digest staging verified.",
    types=IMAGE_BUILDS,
    allowImageBuild=Setting("boolean", True, "Whether this stack may build images.", platform=True),
)
def check_no_build_in_prod(res: HasProps, config: Config) -> Iterator[str]:
    if not config["allowImageBuild"]:
        yield "this stack must not build images: build once in CI, then promote the digest (imageSource: prebuilt)"
