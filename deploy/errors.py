"""The one error type of the deploy tool and the exit codes it maps to."""

from enum import IntEnum


class ExitCode(IntEnum):
    """Distinct exit codes so a pipeline can react to *why* a command failed."""

    OK = 0
    FAILED = 1  # generic failure (bad config, bad arguments that click could not catch)
    USAGE = 2  # click's own code for usage errors
    VERIFICATION_FAILED = 3  # metrics breached a threshold and nothing was rolled back
    VERIFICATION_INCONCLUSIVE = 4  # too little traffic to judge: never counted as a pass
    ROLLED_BACK = 5  # verification failed and the stack was rolled back automatically
    SMOKE_FAILED = 6
    REFUSED = 7  # a safety check refused the operation (nothing to roll back to, dirty build, ...)
    STACK_NOT_FOUND = 8
    CONCURRENT_UPDATE = 9
    PULUMI_FAILED = 10  # the Pulumi CLI ran and failed (program error, policy violation, provider error)
    PULUMI_MISSING = 11  # no `pulumi` CLI on PATH
    PROMETHEUS_UNAVAILABLE = 12
    PREREQUISITES_MISSING = 13  # the cluster lacks what the stack's settings need (CRD, StorageClass, version)
    CLUSTER_UNAVAILABLE = 14  # prerequisites could not be checked: no usable kubeconfig, or the API server failed


class ShipsafeError(Exception):
    """A failure with a message for humans and an exit code for machines; rendered once by the CLI."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
