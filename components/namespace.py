"""The app's namespace, labelled so the API server enforces the Pod Security Standards `restricted` profile."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.config_link import config_keys
from components.pods import labels

PSS_LEVEL = "restricted"
PSS_VERSION = "latest"


@dataclass
class AppNamespaceArgs:
    name: str
    app: str


class AppNamespace(pulumi.ComponentResource):
    name: pulumi.Output[str]
    """The namespace every other object lives in."""

    def __init__(self, name: str, args: AppNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipsafe:components:AppNamespace", name, None, opts)
        pss = {
            f"pod-security.kubernetes.io/{mode}{suffix}": value
            for mode in ("enforce", "audit", "warn")
            for suffix, value in (("", PSS_LEVEL), ("-version", PSS_VERSION))
        }
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.name,
                "labels": {**labels(args.app, "namespace"), **pss},
                "annotations": config_keys({"metadata.name": ["app.namespace"]}),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = namespace.metadata.apply(lambda m: m.name)
        self.register_outputs({"name": self.name})
