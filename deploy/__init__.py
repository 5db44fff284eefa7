"""shipsafe rollout tooling: preview/up per stack, promotion, metric verification and rollback.

Pulumi itself has no rollback and no post-deploy verification; this package adds both on top of the
Automation API. Decision logic lives in plain modules that talk to a `StackBackend` protocol
(`deploy.backend`); `deploy.automation` is the only module that touches Pulumi.
"""
