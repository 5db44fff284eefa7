"""The app image: built from `app.buildContext` and pushed (tagged with the git SHA), or a prebuilt reference
promoted as is.

Workloads get `ref`, which is always pinned by digest when the digest is known: `<repo>:<sha>@sha256:<digest>`.
Prod never builds (build once, promote the same image), which settings enforce before this runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.release import Release
from components.settings import ImageSource


@dataclass
class AppImageArgs:
    source: ImageSource
    repository: str
    """`<registry server>/<repository>`."""
    release: Release
    registry_server: str
    registry_username: str
    registry_password: pulumi.Input[str]
    platform: str
    context: str
    """The build context, relative to the project directory (`shipsafe:app.buildContext`)."""
    dockerfile: str
    """The Dockerfile, relative to the project directory (`shipsafe:app.dockerfile`)."""
    target: str | None
    """The Dockerfile stage to build; None: the last one."""
    registry: pulumi.Resource
    """The push waits for it: an in-cluster registry must be serving first."""
    prebuilt_ref: str | None = None


class AppImage(pulumi.ComponentResource):
    ref: pulumi.Output[str]
    """The exact reference every app container and the migration Job run."""
    config_keys: list[str]
    """The settings `ref` comes from, for the objects that run it (`components/config_link.py`)."""

    def __init__(self, name: str, args: AppImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipsafe:components:AppImage", name, None, opts)
        if args.source is ImageSource.PREBUILT:
            if args.prebuilt_ref is None:
                raise ValueError("a prebuilt image needs its reference")
            self.ref = pulumi.Output.from_input(args.prebuilt_ref)
            self.config_keys = ["imageRef"]
        else:
            image_name = f"{args.repository}:{args.release.sha}"
            image = docker.Image(
                f"{name}-build",
                image_name=image_name,
                build=docker.DockerBuildArgs(
                    context=args.context, dockerfile=args.dockerfile, target=args.target, platform=args.platform
                ),
                registry=docker.RegistryArgs(
                    server=args.registry_server,
                    username=args.registry_username,
                    password=args.registry_password,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.registry]),
            )
            # repo_digest is `<repo>@sha256:...`; keep the SHA tag too so the reference says what code it is.
            self.config_keys = ["registry.server", "registry.repository"]
            self.ref = image.repo_digest.apply(lambda digest: f"{image_name}@{digest.split('@', 1)[1]}")
        self.register_outputs({"ref": self.ref})
