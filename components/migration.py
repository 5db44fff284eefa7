"""The release's migration Job: runs before any app pod of the release, with the same image and settings.

The Job is named per release, so each release runs its own; pulumi-kubernetes waits for it to complete, and
every app Deployment depends on it, so a failed migration halts the deploy while the old pods keep serving.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.app_config import AppConfig
from components.config_link import config_keys
from components.pods import (
    container_security_context,
    labels,
    pod_security_context,
    service_account,
    tmp_mount,
    tmp_volume,
)
from components.release import Release
from components.settings import Migration
from components.timeline import JOB_DELETE_AWAIT_SECONDS, await_timeouts

COMPONENT = "migration"
# pulumi-kubernetes replaces (re-runs) a Job that is not complete on the next `up` instead of waiting on it.
REPLACE_UNREADY = "pulumi.com/replaceUnready"


@dataclass
class MigrationJobArgs:
    app: str
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    image_keys: list[str]
    """The settings the image reference comes from (`AppImage.config_keys`)."""
    release: Release
    settings: Migration
    run_as_user: int
    pull_secret_name: str
    app_config: AppConfig
    await_timeout_seconds: int
    """How long `up` waits for the Job to complete (`components/timeline.py`: it outlasts activeDeadlineSeconds)."""


class MigrationJob(pulumi.ComponentResource):
    job: k8s.batch.v1.Job
    job_name: str

    def __init__(self, name: str, args: MigrationJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipsafe:components:MigrationJob", name, None, opts)
        settings = args.settings
        if settings.command is None:
            raise ValueError("the app has no migration command (shipsafe:migration.command), so no Job runs")
        job_labels = labels(args.app, COMPONENT, args.release.sha)
        self.job_name = f"{args.app}-migrate-{args.release.short}"
        account = service_account(
            f"{name}-serviceaccount",
            name=f"{args.app}-migrate",
            namespace=args.namespace,
            component_labels=labels(args.app, COMPONENT),
            parent=self,
        )
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            metadata={
                "name": self.job_name,
                "namespace": args.namespace,
                "labels": job_labels,
                "annotations": {
                    REPLACE_UNREADY: "true",
                    **config_keys(
                        {
                            "spec.backoffLimit": ["migration.backoffLimit"],
                            "spec.activeDeadlineSeconds": ["migration.activeDeadlineSeconds"],
                            "spec.ttlSecondsAfterFinished": ["migration.ttlSecondsAfterFinished"],
                            "pod.securityContext": ["app.runAsUser"],
                            "container.image": args.image_keys,
                            "container.command": ["migration.command"],
                            "container.env": args.app_config.env_keys,
                            "container.resources": ["migration.resources"],
                        }
                    ),
                },
            },
            spec={
                "backoff_limit": settings.backoff_limit,
                "active_deadline_seconds": settings.active_deadline_seconds,
                "ttl_seconds_after_finished": settings.ttl_seconds_after_finished,
                "template": {
                    "metadata": {"labels": job_labels},
                    "spec": {
                        "restart_policy": "Never",
                        "service_account_name": account.metadata.apply(lambda m: m.name),
                        "automount_service_account_token": False,
                        "image_pull_secrets": [{"name": args.pull_secret_name}],
                        "security_context": pod_security_context(args.run_as_user),
                        "containers": [
                            {
                                "name": "migrate",
                                "image": args.image,
                                "image_pull_policy": "IfNotPresent",
                                "command": settings.command,
                                **args.app_config.container_env(),
                                "resources": settings.resources.to_kubernetes(),
                                "security_context": container_security_context(),
                                "volume_mounts": [tmp_mount()],
                            }
                        ],
                        "volumes": [tmp_volume()],
                    },
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                # Any change replaces the Job, metadata included. pulumi-kubernetes forces replacement only for
                # spec.template/selector/completions/parallelism (`provider/pkg/provider/diff.go` `job`); any other
                # change is an Update, which first reads the live Job (`provider/pkg/await/await.go` `Update`,
                # `client.Get`) and fails with 404 once ttlSecondsAfterFinished has deleted it.
                replace_on_changes=["*"],
                delete_before_replace=True,
                # The next release's `up` waits for this Job's deletion with this state's delete timeout.
                custom_timeouts=await_timeouts(args.await_timeout_seconds, delete_seconds=JOB_DELETE_AWAIT_SECONDS),
            ),
        )
        self.register_outputs({"jobName": self.job_name})
