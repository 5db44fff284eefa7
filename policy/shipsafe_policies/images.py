"""Container image references, normalised the way Docker resolves them (docker.io/library/ for short names)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

IMAGE_BUILDS = frozenset({"docker:index/image:Image", "docker-build:index:Image"})
"""Resources that build an image (pulumi-docker 4/5 and docker-build)."""

_UNVERSIONED = ("gcr.io/distroless/", "cgr.dev/chainguard/")
"""Registries whose images have no version tags: distroless publishes `latest`, `nonroot`, `debug` (GoogleContainerTools
/distroless README, "Image tags"), Chainguard's free images `latest` and `latest-dev`; a digest is their only pin."""
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_FULL_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)*([-_.+][0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """`registry/repository` without tag or digest: what allow-lists match on."""
        return f"{self.registry}/{self.repository}"

    @property
    def has_valid_digest(self) -> bool:
        return self.digest is not None and _DIGEST.match(self.digest) is not None

    @property
    def tag_is_mutable(self) -> bool:
        """No tag, or `latest`: the same reference can mean different bytes tomorrow."""
        return self.tag is None or self.tag == "latest"

    @property
    def has_version_tags(self) -> bool:
        """Whether the repository publishes version tags at all (`_UNVERSIONED` do not)."""
        return not self.name.startswith(_UNVERSIONED)

    @property
    def tag_is_full_version(self) -> bool:
        """`15.18-bookworm` pins a release; `15` or `bookworm` float with upstream."""
        return self.tag is not None and _FULL_VERSION.match(self.tag) is not None


def parse_image(reference: str) -> ImageRef:
    rest, _, digest = reference.partition("@")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
    else:
        registry, path = "docker.io", rest
    repository, tag = path, None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        repository, tag = path[:colon], path[colon + 1 :]
    if registry == "docker.io" and "/" not in repository:
        repository = f"library/{repository}"
    return ImageRef(registry, repository, tag or None, digest or None)


def matches_prefix(image: ImageRef, prefixes: Iterable[str]) -> bool:
    """`registry.example/team` allows `registry.example/team/app` but not `registry.example/teamx`."""
    return any(image.name == p.rstrip("/") or image.name.startswith(p.rstrip("/") + "/") for p in prefixes)
