"""The shipsafe policy pack: `pulumi preview --policy-pack policy` (or the offline harness) runs this file."""

from shipsafe_policies.pack import serve

serve()
