"""The shipsafe program: read the stack's settings, compose the components, export what the deploy tooling
needs. A project's `__main__.py` calls `run()` (this checkout's, and an app repository's made by `shipsafe new`), so
every project deploys the one composition its installed components define."""

from pathlib import Path

import pulumi

from components.app_config import AppConfig, AppConfigArgs, allowed_hosts
from components.backing_service import POSTGRES, REDIS, BackingServiceArgs, BackingServiceComponent
from components.image import AppImage, AppImageArgs
from components.migration import MigrationJob, MigrationJobArgs
from components.namespace import AppNamespace, AppNamespaceArgs
from components.network import NetworkPolicies, NetworkPoliciesArgs
from components.registry import Registry, RegistryArgs
from components.release import resolve_release
from components.settings import CONFIG_NAMESPACE, RegistryMode, ServiceMode, load_settings
from components.timeline import deploy_timeline
from components.workload import AppWorkload, AppWorkloadArgs


def run() -> None:
    """Everything `pulumi up` declares for the stack the engine runs: its config is `Pulumi.<stack>.yaml`."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    settings = load_settings(config)
    # Also refuses settings whose awaits cannot cover what they wait for, before any resource exists.
    timeline = deploy_timeline(settings)
    release = resolve_release(settings, Path.cwd())
    app = settings.app.name

    namespace = AppNamespace(app, AppNamespaceArgs(name=settings.app.namespace, app=app))
    ns = namespace.name
    registry = Registry(
        f"{app}-registry",
        RegistryArgs(
            app=app,
            namespace=ns,
            settings=settings.registry,
            ingress_class_name=settings.app.ingress_class_name,
            cluster_issuer=settings.app.cluster_issuer,
            password=(
                config.require_secret("registryPassword") if settings.registry.mode is RegistryMode.EXTERNAL else None
            ),
            awaits=timeline.registry,
        ),
    )
    image = AppImage(
        f"{app}-image",
        AppImageArgs(
            source=settings.image_source,
            repository=settings.registry.image_repository,
            release=release,
            registry_server=registry.server,
            registry_username=registry.username,
            registry_password=registry.password,
            platform=settings.app.image_platform,
            context=settings.app.build_context,
            dockerfile=settings.app.dockerfile_path,
            target=settings.app.build_target,
            prebuilt_ref=settings.image_ref,
            registry=registry,
        ),
    )
    # Only the backing services the app has (mode in-cluster or external); mode none declares nothing for one.
    services = {
        kind.role: BackingServiceComponent(
            f"{app}-{kind.role}",
            BackingServiceArgs(
                app=app,
                namespace=ns,
                kind=kind,
                settings=service,
                external_url=config.require_secret(f"{kind.role}Url") if service.mode is ServiceMode.EXTERNAL else None,
                awaits=awaits,
                pull_secret_name=registry.pull_secret_name,
            ),
        )
        for kind, service, awaits in (
            (POSTGRES, settings.postgres, timeline.postgres),
            (REDIS, settings.redis, timeline.redis),
        )
        if service.present
    }
    app_config = AppConfig(
        f"{app}-config",
        AppConfigArgs(
            app=app,
            namespace=ns,
            port=settings.app.port,
            version=release.sha,
            log_level=settings.app.log_level,
            shutdown_timeout_seconds=settings.rollout.app_shutdown_timeout_seconds,
            database_secret=services[POSTGRES.role].url_secret_name if POSTGRES.role in services else None,
            redis_secret=services[REDIS.role].url_secret_name if REDIS.role in services else None,
            database_url_env=settings.app.postgres_url_env,
            redis_url_env=settings.app.redis_url_env,
            allowed_hosts_env=settings.app.allowed_hosts_env,
            allowed_hosts=allowed_hosts(settings.app, [name for name, w in settings.workloads.items() if w.expose]),
        ),
    )
    prerequisites: list[pulumi.Resource] = [registry, app_config, *services.values()]
    # A rollback runs the previous image on the current schema: migrations are forward-only, so none runs (and the
    # timeline has no Job await); neither does one for an app without migrations.
    migration = (
        None
        if timeline.migration_job_seconds is None
        else MigrationJob(
            f"{app}-migrate",
            MigrationJobArgs(
                app=app,
                namespace=ns,
                image=image.ref,
                image_keys=image.config_keys,
                release=release,
                settings=settings.migration,
                run_as_user=settings.app.run_as_user,
                pull_secret_name=registry.pull_secret_name,
                app_config=app_config,
                await_timeout_seconds=timeline.migration_job_seconds,
            ),
            opts=pulumi.ResourceOptions(depends_on=prerequisites),
        )
    )
    workloads = [
        AppWorkload(
            f"{app}-{workload}",
            AppWorkloadArgs(
                workload=workload,
                settings=workload_settings,
                app=settings.app,
                rollout=settings.rollout,
                namespace=ns,
                image=image.ref,
                image_keys=image.config_keys,
                release=release,
                pull_secret_name=registry.pull_secret_name,
                app_config=app_config,
                migration_job=migration.job if migration else None,
                depends_on=prerequisites,
                awaits=timeline.workloads[workload],
            ),
        )
        for workload, workload_settings in settings.workloads.items()
    ]
    NetworkPolicies(
        f"{app}-network",
        NetworkPoliciesArgs(
            app=app,
            namespace=ns,
            workloads=list(settings.workloads),
            migrates=settings.migration.command is not None,
            exposed_workloads=[name for name, w in settings.workloads.items() if w.expose],
            postgres=settings.postgres,
            redis=settings.redis,
            ingress_namespace=settings.app.ingress_namespace,
            monitoring_namespace=settings.app.monitoring_namespace,
            in_cluster_registry=settings.registry.mode is RegistryMode.IN_CLUSTER,
        ),
    )

    pulumi.export("namespace", ns)
    pulumi.export("imageRef", image.ref)
    pulumi.export("gitSha", release.sha)
    pulumi.export("appVersion", release.sha)
    pulumi.export("dirty", release.dirty)
    pulumi.export("migrationJob", migration.job_name if migration else None)
    pulumi.export("workloads", [w.deployment_name for w in workloads])
    pulumi.export("appUrl", f"https://{settings.app.host}")
    pulumi.export("deployTimeline", timeline.as_output())
