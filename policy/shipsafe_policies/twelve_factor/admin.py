"""XII Admin processes: the migration Job runs the release's image, once, before the app."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import PolicyResource

from .. import k8s
from ..floor import MIGRATION_FIRST
from ..framework import Config, Finding, Floor, HasProps, Item, Section, Setting, item_by_item
from ..images import parse_image
from ..k8s import dig, items, number

SECTION = Section(__name__, "12f-admin", topic="XII Admin processes")

MIGRATION_COMPONENT = Setting("string", "migration", "Component label of the migration Job.")


def _ancestry(resource: PolicyResource) -> Iterator[PolicyResource]:
    current: PolicyResource | None = resource
    while current is not None:
        yield current
        current = current.parent


def _images(res: HasProps) -> set[str]:
    return {str(c.get("image")) for c in items(dig(k8s.pod_spec(res), "containers"))}


@SECTION.stack(
    "12f-admin-migration-release-image",
    "The migration Job runs the Deployments' exact image and every app Deployment depends on it.",
    "Pass the same image output to Job and Deployments; add depends_on=[job] to each Deployment.",
    topic="XII Admin processes; V Build/release/run",
    migrationComponent=MIGRATION_COMPONENT,
    **k8s.APP_SETTINGS,
    floor=MIGRATION_FIRST,
)
@item_by_item
def check_migration_release_image(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str]]:
    jobs = [
        j
        for j in k8s.of_type(resources, k8s.JOB)
        if k8s.labels(j).get(k8s.COMPONENT) == config["migrationComponent"] and k8s.is_app_workload(j, config)
    ]
    if not jobs:
        return  # no Job to judge: a rollback (shipsafe:rollback) or an app without migrations runs none
    deployments = k8s.app_deployments(resources, config)
    for job in jobs:
        with item():  # the image is unknown in preview until it is built; the dependency checks below still run
            image = parse_image(next(iter(_images(job)), ""))
            release = {(image.tag or "")[:12], (image.digest or "").removeprefix("sha256:")[:12]} - {""}
            name = str(dig(job.props, "metadata", "name"))
            if not any(marker in name for marker in release):
                yield f"{k8s.display(job)}: name the Job after the release (…-migrate-<sha[:12]>)", job.urn
        for deployment in deployments:
            where = k8s.display(deployment)
            with item():
                job_images, images = _images(job), _images(deployment)
                if images != job_images:
                    yield (
                        f"{where} runs {sorted(images)} but the migration ran {sorted(job_images)}; "
                        "use the exact same image reference",
                        deployment.urn,
                    )
            depends = {a.urn for d in deployment.dependencies for a in _ancestry(d)}
            if job.urn not in depends and not any(a.urn in depends for a in _ancestry(job) if a is not job):
                yield (
                    f"{where}: add depends_on=[migration Job] so migrations finish before new pods start",
                    (deployment.urn),
                )


@SECTION.resource(
    "12f-admin-migration-job-hygiene",
    "The migration Job never restarts in place, retries at most a few times and cleans up.",
    "Set restartPolicy Never, backoffLimit <= 3, activeDeadlineSeconds and ttlSecondsAfterFinished.",
    types={k8s.JOB},
    migrationComponent=MIGRATION_COMPONENT,
    maxBackoffLimit=Setting("number", 3, "Largest acceptable backoffLimit.", platform=True),
    floor=Floor(MIGRATION_FIRST.why, at_most={"maxBackoffLimit": 3}),
)
@item_by_item
def check_migration_job_hygiene(res: HasProps, config: Config, item: Item) -> Iterator[str | Finding]:
    if k8s.labels(res).get(k8s.COMPONENT) != config["migrationComponent"]:
        return
    spec = res.props.get("spec") or {}
    with item():
        if dig(spec, "template", "spec", "restartPolicy") != "Never":
            yield "set restartPolicy: Never (the Job's backoffLimit governs retries)"
    with item():
        backoff = number(spec.get("backoffLimit"))
        if backoff is None or backoff > float(config["maxBackoffLimit"]):
            yield Finding(
                f"set backoffLimit <= {config['maxBackoffLimit']:.0f}", ("spec.backoffLimit",), ("maxBackoffLimit",)
            )
    for field in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        with item():
            if spec.get(field) is None:
                yield Finding(f"set {field}", (f"spec.{field}",))
