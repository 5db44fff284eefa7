"""VII Port binding: the app exports HTTP on one declared, named port that everything targets."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import PolicyResource

from .. import k8s
from ..framework import Config, Finding, Item, Section, Setting, item_by_item
from ..indexes import LabelIndex
from ..k8s import Lookup, dig, items, number

SECTION = Section(__name__, "12f-port", topic="VII Port binding")


@SECTION.stack(
    "12f-port-binding",
    "The app exports HTTP on a named containerPort that PORT and its Services target.",
    "Declare the port once (shipsafe:app.port): ports [{name: http, containerPort: <port>}], PORT in the "
    "ConfigMap, targetPort: http.",
    portName=Setting("string", "http", "Name of the app's container port."),
    **k8s.APP_SETTINGS,
)
@item_by_item
def check_port_binding(resources: list[PolicyResource], config: Config, item: Item) -> Iterator[tuple[Finding, str]]:
    """The port is declared once, as the named containerPort; PORT and the Services agree with that declaration."""
    port_name = config["portName"]
    ports = ("container.ports",)
    config_maps = Lookup()
    for config_map in k8s.of_type(resources, k8s.CONFIG_MAP):
        with config_maps.adding():
            config_maps.entries[dig(config_map.props, "metadata", "name")] = config_map.props.get("data") or {}
    app_pods = Lookup()  # complete only if every app Deployment's pod labels and named port are known
    by_labels: LabelIndex[set[float]] = LabelIndex()  # the numbers of each app Deployment's named port
    for deployment in k8s.app_deployments(resources, config):
        with app_pods.adding():
            numbers = k8s.named_ports([deployment]).get(port_name, set())
            by_labels.add(None, k8s.pod_labels(deployment), numbers)
            app_pods.entries[deployment.urn] = deployment
        # The app container declares the port; init containers and sidecars serve nothing and need not.
        serving, containers = 0, Item()  # its own Item: an unknown container leaves "no port" undecided
        for container in items(dig(k8s.pod_spec(deployment), "containers")):
            with containers():
                where = f"{k8s.display(deployment)} container {dig(container, 'name') or '?'}"
                declared = [p for p in items(container.get("ports")) if p.get("name") == port_name]
                port = number(declared[0].get("containerPort")) if declared else None
                if port is None:
                    continue
                serving += 1
                values = [e.get("value") for e in items(container.get("env")) if e.get("name") == "PORT"]
                for source in items(container.get("envFrom")):
                    values.append(config_maps.get(dig(source, "configMapRef", "name"), {}).get("PORT"))
                values = [v for v in values if v is not None]
                if not values or any(str(v) != f"{port:.0f}" for v in values):
                    yield (
                        Finding(
                            f"{where}: PORT must be {port:.0f} (the containerPort named {port_name}), set via the "
                            "ConfigMap",
                            ports,
                        ),
                        deployment.urn,
                    )
        item.unknown = item.unknown or containers.unknown
        with item():
            if not serving and containers.unknown is None and items(dig(k8s.pod_spec(deployment), "containers")):
                yield (
                    Finding(f"{k8s.display(deployment)}: declare the app's containerPort named {port_name}", ports),
                    deployment.urn,
                )
    for service in k8s.of_type(resources, k8s.SERVICE):
        with item():
            selector = dig(service.props, "spec", "selector")
            selected = by_labels.served_by(None, selector)  # Services of any namespace, as before
            if not selected:
                app_pods.ensure_complete()  # an app pod with unknown labels might be the one it selects
                continue
            for service_port in items(dig(service.props, "spec", "ports")):
                with item():
                    target = service_port.get("targetPort")
                    target = service_port.get("port") if target is None else target  # SetDefaults_Service
                    if target != port_name and not all(number(target) in n for n in selected):
                        message = f"{k8s.display(service)}: targetPort must be the named port {port_name}"
                        yield Finding(message, ("spec.ports",)), service.urn
