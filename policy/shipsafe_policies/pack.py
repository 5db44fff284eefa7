"""The pack itself, served by a pack directory's `__main__.py`: this project's `policy/`, and the `policy/` of an
app repository that installs shipsafe (`shipsafe new`), so both enforce the one pack the installed rules define."""

from pulumi_policy import EnforcementLevel, Policy, PolicyPack

from . import all_policies
from .sdk_speedup import convert_requests_once


def serve() -> None:
    """Registers the pack with the engine that started this process (`pulumi preview --policy-pack DIR`)."""
    convert_requests_once()
    policies: list[Policy] = [*all_policies()]
    PolicyPack(
        name="shipsafe",
        enforcement_level=EnforcementLevel.MANDATORY,
        policies=policies,
    )
