"""The offline commands: preview, render and diff a stack without the Pulumi CLI or a cluster, over the engine
model in `harness/` (mock runtime, phases, the policy pack through the analyzer protocol)."""
