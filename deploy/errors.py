"""The one error type of the deploy tool; its exit codes are the project-wide table in `deploy.exit_codes`."""

from collections.abc import Sequence

from deploy.exit_codes import ExitCode

__all__ = ["ExitCode", "ShipsafeError"]


class ShipsafeError(Exception):
    """A failure with a message for humans and an exit code for machines; rendered once by the CLI."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILED, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.problems = list(problems)
        """Each problem on its own, e.g. every bad config key with its value (the `error` of a JSON document)."""
