"""VI Processes: the app's processes are stateless."""

from __future__ import annotations

from collections.abc import Iterator

from .. import k8s
from ..framework import Config, HasProps, Item, Section, item_by_item
from ..k8s import dig, items

SECTION = Section(__name__, "12f-processes", topic="VI Processes")


@SECTION.resource(
    "12f-processes-stateless",
    "App processes are stateless: no PersistentVolumeClaim or hostPath on app workloads.",
    "Keep state in Postgres/Redis; use an emptyDir for scratch space.",
    types=k8s.WORKLOADS,
    **k8s.APP_SETTINGS,
)
@item_by_item
def check_stateless_processes(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if not k8s.is_app_workload(res, config):
        return
    with item():
        for volume in items(dig(k8s.pod_spec(res), "volumes")):
            with item():
                for kind in [k for k in ("persistentVolumeClaim", "hostPath") if k in volume]:
                    yield f"volume {volume.get('name')}: app processes are stateless; drop the {kind} (use Postgres)"
    with item():
        if items(dig(res.props, "spec", "volumeClaimTemplates")):
            yield "app processes are stateless; drop volumeClaimTemplates"
