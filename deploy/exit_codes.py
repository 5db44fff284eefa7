"""The one table of exit codes of every shipsafe command: the offline harness, `python -m deploy` and `shipsafe`.

Neutral on purpose: `deploy` imports the harness, never the other way round, and both need this table. Each code
says what it means and what a pipeline should do about the stack the command was working on (`Aftermath`); the
workflows read that from `shipsafe exit-codes --shell` instead of keeping their own list of numbers, and
`docs/cli.md` is generated from it.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Aftermath(StrEnum):
    """The state a failed command leaves its stack in, which decides whether a pipeline rolls it back."""

    DONE = "done"
    UNCHANGED = "unchanged"
    """The command stopped before it changed any stack."""
    ROLLED_BACK = "rolled back"
    """It changed the stack, found it bad and already put it back."""
    UNVERIFIED = "unverified"
    """It changed the stack and nothing shows the change is bad: a human decides."""
    MAYBE_BAD = "maybe bad"
    """The stack may be bad or half-updated: roll it back."""


class ExitCode(IntEnum):
    """Distinct exit codes so a pipeline can react to *why* a command failed. Numbers never change meaning."""

    description: str
    aftermath: Aftermath

    def __new__(cls, value: int, description: str, aftermath: Aftermath) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        member.aftermath = aftermath
        return member

    OK = 0, "success", Aftermath.DONE
    FAILED = 1, "a failure without a more specific code (also an unexpected crash)", Aftermath.MAYBE_BAD
    USAGE = 2, "bad arguments or options (click's and argparse's own code)", Aftermath.UNCHANGED
    VERIFICATION_FAILED = 3, "metrics breached a threshold; nothing was rolled back", Aftermath.MAYBE_BAD
    VERIFICATION_INCONCLUSIVE = 4, "too little traffic or data to judge; never a pass", Aftermath.UNVERIFIED
    ROLLED_BACK = 5, "verification failed and the stack was rolled back automatically", Aftermath.ROLLED_BACK
    SMOKE_FAILED = 6, "the app's health, readiness or request check failed", Aftermath.UNCHANGED
    REFUSED = (
        7,
        "a safety check refused (nothing to roll back to, a dirty build, protected data, ...)",
        (Aftermath.UNCHANGED),
    )
    STACK_NOT_FOUND = 8, "the stack does not exist in the backend", Aftermath.UNCHANGED
    CONCURRENT_UPDATE = 9, "another update holds the stack's lock; nothing changed", Aftermath.UNCHANGED
    PULUMI_FAILED = 10, "the Pulumi CLI ran and failed (program, policy or provider error)", Aftermath.MAYBE_BAD
    PULUMI_MISSING = 11, "no `pulumi` CLI on PATH", Aftermath.UNCHANGED
    PROMETHEUS_UNAVAILABLE = 12, "Prometheus did not answer the verification queries", Aftermath.UNVERIFIED
    PREREQUISITES_MISSING = 13, "the cluster (or environment) lacks what the stack needs", Aftermath.UNCHANGED
    CLUSTER_UNAVAILABLE = (
        14,
        "the prerequisites could not be checked: no usable kubeconfig or API server",
        (Aftermath.UNCHANGED),
    )
    CONFIG_ERROR = (
        15,
        "invalid stack file or settings, settings the stack's policy config refuses, or settings that contradict "
        "what the project knows (the Dockerfile, the app's shipsafe-app.yaml, the app's other stacks)",
        (Aftermath.UNCHANGED),
    )
    POLICY_VIOLATION = (
        16,
        "a mandatory policy violation in a preview (or an unsafe modelled next release)",
        (Aftermath.UNCHANGED),
    )
    POLICY_PACK_FAILED = 17, "the policy pack did not start, rejected its config or crashed", Aftermath.UNCHANGED
    CHANGES_FOUND = 18, "`diff --exit-code`: the rendered objects differ", Aftermath.UNCHANGED
    LOCAL_WRITE_FAILED = (
        19,
        "a local file could not be written (a verification record under out/, render --output-dir); what the "
        "command did to a stack stands, a passed verification included",
        (Aftermath.UNVERIFIED),
    )


def exit_code_of(status: int) -> ExitCode:
    """The member for a process status; a status outside the table (a signal, a crash) counts as FAILED."""
    return next((code for code in ExitCode if code.value == status), ExitCode.FAILED)


def shell_variables() -> str:
    """`SHIPSAFE_EXIT_<NAME>=<code>` per code, and per aftermath the codes that leave a stack so, space-separated
    (`SHIPSAFE_EXITS_<AFTERMATH>`), for `eval "$(shipsafe exit-codes --shell)"` in a workflow step."""
    lines = [f"SHIPSAFE_EXIT_{code.name}={code.value}" for code in ExitCode]
    for aftermath in Aftermath:
        codes = " ".join(str(code.value) for code in ExitCode if code.aftermath is aftermath)
        lines.append(f'SHIPSAFE_EXITS_{aftermath.name}="{codes}"')
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    rows = [f"| {code.value} | `{code.name}` | {code.description} | {code.aftermath} |" for code in ExitCode]
    return "\n".join(["| code | name | meaning | the stack afterwards |", "| --- | --- | --- | --- |", *rows]) + "\n"
