"""The shipsafe policy pack: `pulumi preview --policy-pack policy` (or the offline harness) runs this file."""

from pulumi_policy import EnforcementLevel, PolicyPack
from shipsafe_policies import all_policies, all_rules
from shipsafe_policies.floor import refuse_lowered_floor
from shipsafe_policies.sdk_speedup import collect_request_garbage_only, convert_requests_once

convert_requests_once()
refuse_lowered_floor(all_rules())
collect_request_garbage_only()
PolicyPack(
    name="shipsafe",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=all_policies(),
)
