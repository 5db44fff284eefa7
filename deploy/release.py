"""What a release is, as the stack contract names it: an image reference, a git SHA and the config keys.

Image references are parsed with the stack's own `IMAGE_REF` pattern so the tool and the program can
never disagree about what a valid, digest-pinned reference is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from components.settings import CONFIG_NAMESPACE, GIT_SHA, IMAGE_REF, RegistrySettings
from deploy.errors import ExitCode, ShipsafeError
from deploy.stack_file import stack_document

IMAGE_SOURCE = f"{CONFIG_NAMESPACE}:imageSource"
IMAGE_REF_KEY = f"{CONFIG_NAMESPACE}:imageRef"
GIT_SHA_KEY = f"{CONFIG_NAMESPACE}:gitSha"
ROLLBACK = f"{CONFIG_NAMESPACE}:rollback"
VERIFICATION = f"{CONFIG_NAMESPACE}:verification"


@dataclass(frozen=True)
class ImageRef:
    """`<registry>/<repository>[:<tag>][@sha256:<digest>]`."""

    reference: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, reference: str) -> ImageRef:
        match = IMAGE_REF.match(reference)
        if not match:
            raise ShipsafeError(
                f"{reference!r} is not an image reference <registry>/<repository>:<sha>@sha256:<digest>",
                ExitCode.FAILED,
            )
        return cls(reference, match.group("repository"), match.group("tag"), match.group("digest"))

    @property
    def identity(self) -> str:
        """What makes two references the same image: the digest when pinned, else the whole reference."""
        return self.digest or self.reference

    @property
    def short(self) -> str:
        """`<sha[:12]>@sha256:<digest[:12]>`: enough to tell releases apart in tables and messages."""
        tag = self.tag[:12] if self.tag else "-"
        return f"{tag}@{self.digest[:19]}" if self.digest else (self.tag or self.reference)


NOT_BUILT_DIGEST = "sha256:" + "0" * 64
"""Stands for an image the pipeline has not built yet: valid to the stack and the policy pack, never pullable."""


def stack_file_registry(project_dir: Path, stack: str) -> str:
    """`<server>/<repository>` of the project's images, as `Pulumi.<stack>.yaml` commits it."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    key = f"{CONFIG_NAMESPACE}:registry"
    if not path.is_file():
        raise ShipsafeError(f"no stack file {path.name}", ExitCode.FAILED)
    try:
        config = stack_document(path).get("config") or {}
        return RegistrySettings.model_validate(config[key]).image_repository
    except (KeyError, ValidationError) as error:
        raise ShipsafeError(f"{path.name}: {key} is missing or invalid ({error})", ExitCode.FAILED) from None


def not_yet_built(repository: str, git_sha: str) -> ImageRef:
    """The reference the pipeline will deploy for `git_sha`, with the placeholder digest (the build comes later)."""
    return ImageRef.parse(f"{repository}:{check_git_sha(git_sha)}@{NOT_BUILT_DIGEST}")


def check_git_sha(value: str) -> str:
    if not GIT_SHA.match(value):
        raise ShipsafeError(f"{value!r} is not a git SHA (7-40 lowercase hex characters)", ExitCode.FAILED)
    return value


def release_config(image: ImageRef, git_sha: str, *, rollback: bool) -> dict[str, str]:
    """The flat config keys that pin a stack to one prebuilt image.

    `rollback=true` makes the program skip the migration Job: schema changes are forward-only and the old
    code runs on the new schema. Every normal deploy writes `false` so migrations (if the app has any) run again.
    """
    return {
        IMAGE_SOURCE: "prebuilt",
        IMAGE_REF_KEY: image.reference,
        GIT_SHA_KEY: check_git_sha(git_sha),
        ROLLBACK: "true" if rollback else "false",
    }


def image_of(config: Mapping[str, str]) -> ImageRef | None:
    """The prebuilt image a config (current or recorded in history) deploys; None for in-stack builds."""
    reference = config.get(IMAGE_REF_KEY)
    if config.get(IMAGE_SOURCE) != "prebuilt" or not reference:
        return None
    return ImageRef.parse(reference)


def git_sha_of(config: Mapping[str, str]) -> str | None:
    sha = config.get(GIT_SHA_KEY)
    if sha:
        return sha
    image = image_of(config)
    return image.tag if image else None


def object_config(config: Mapping[str, str], key: str) -> dict[str, object]:
    """Structured config comes back from Pulumi as a JSON string."""
    raw = config.get(key)
    if raw is None:
        raise ShipsafeError(f"stack config {key} is not set", ExitCode.FAILED)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ShipsafeError(f"stack config {key} is not a JSON object: {raw!r}", ExitCode.FAILED) from None
    if not isinstance(value, dict):
        raise ShipsafeError(f"stack config {key} must be an object, got {raw!r}", ExitCode.FAILED)
    return value
