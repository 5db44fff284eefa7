"""The shipsafe policy pack: `pulumi preview --policy-pack policy` (or the offline harness) runs this file."""

import gc

from pulumi_policy import EnforcementLevel, PolicyPack
from shipsafe_policies import all_policies, all_rules
from shipsafe_policies.floor import refuse_lowered_floor
from shipsafe_policies.sdk_speedup import convert_requests_once

convert_requests_once()
refuse_lowered_floor(all_rules())
gc.freeze()  # the SDKs and the pack, imported once, stay out of every collection of the requests' garbage
PolicyPack(
    name="shipsafe",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=all_policies(),
)
