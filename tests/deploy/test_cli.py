"""Every command through click's CliRunner against in-memory stacks (no Pulumi CLI involved)."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from components.settings import settings_from_config
from components.timeline import deploy_timeline, verification_seconds
from deploy.cli import cli
from deploy.context import DeployContext
from deploy.docs.cli import json_commands
from deploy.errors import ExitCode
from deploy.exit_codes import Aftermath
from deploy.offline.preview import Report
from deploy.progress import duration
from deploy.prometheus import Sample
from deploy.stack_file import overlaid_stack_file
from deploy.verify import SETTLE_SECONDS
from deploy.verify import settings_from_config as verification_of
from tests.deploy.conftest import FakeClock
from tests.deploy.memory_stack import REPO, MemoryStack, MemoryStacks, image, sha


def test_preview_runs_the_policy_pack_with_the_stack_config(run_cli, stacks, project_dir):
    result = run_cli("preview", "staging")
    assert result.exit_code == 0, result.output
    assert "Planned changes: same: 20, update: 2" in result.output
    [(kind, policy)] = stacks["staging"].policy_runs
    assert kind == "preview"
    assert policy.path == project_dir / "policy"
    assert policy.config == project_dir / "policy" / "config" / "staging.json"


def test_preview_offline_delegates_to_the_offline_preview(run_cli, stacks, offline_calls, project_dir):
    result = run_cli("preview", "prod", "--offline")
    assert result.exit_code == 0, result.output
    assert offline_calls == [("prod", {}, project_dir)]
    assert stacks["prod"].policy_runs == []


def test_failing_offline_preview_fails_the_command(run_cli, deploy_ctx):
    deploy_ctx.offline_preview = lambda stack, overrides, **_: Report(stack, ExitCode.FAILED)
    result = run_cli("up", "staging", "--offline")
    assert result.exit_code == ExitCode.FAILED
    assert "offline preview of staging failed" in result.stderr


def test_missing_policy_config_is_an_error(run_cli, project_dir):
    (project_dir / "policy" / "config" / "staging.json").unlink()
    result = run_cli("preview", "staging")
    assert result.exit_code == ExitCode.FAILED
    assert "staging.json is missing" in result.stderr


def test_unknown_stack_has_its_own_exit_code(run_cli):
    result = run_cli("history", "qa")
    assert result.exit_code == ExitCode.STACK_NOT_FOUND
    assert "stack qa does not exist" in result.stderr


def test_up_pins_the_image_and_previews_before_updating(run_cli, stacks):
    staging = stacks["staging"]
    result = run_cli("up", "staging", "--image-ref", image(3))
    assert result.exit_code == 0, result.output
    assert [kind for kind, _ in staging.policy_runs] == ["preview", "up"]
    assert staging.config["shipsafe:imageSource"] == "prebuilt"
    assert staging.config["shipsafe:imageRef"] == image(3)
    assert staging.config["shipsafe:gitSha"] == sha(3)
    assert staging.config["shipsafe:rollback"] == "false"
    assert staging.history()[0].message == f"deploy {sha(3)[:12]}"
    assert staging.migrations[-1] == sha(3)


def test_up_rejects_a_malformed_image_reference(run_cli, stacks):
    result = run_cli("up", "staging", "--image-ref", "notes:latest")
    assert result.exit_code == ExitCode.FAILED
    assert "is not an image reference" in result.stderr
    assert stacks["staging"].policy_runs == []


def test_failed_update_exits_with_the_pulumi_code_and_stays_in_history(run_cli, stacks):
    stacks["staging"].fail_next_up = True
    result = run_cli("up", "staging", "--image-ref", image(3))
    assert result.exit_code == ExitCode.PULUMI_FAILED
    assert stacks["staging"].history()[0].result == "failed"


def test_up_verify_passes_on_healthy_metrics(run_cli, metrics):
    result = run_cli("up", "staging", "--image-ref", image(3), "--verify")
    assert result.exit_code == 0, result.output
    assert "Verification PASSED" in result.output
    assert f'version="{sha(3)}"' in metrics.queries[0]


def test_up_verify_rolls_back_when_errors_spike(run_cli, stacks, metrics):
    metrics.error_ratio = 0.25
    staging = stacks["staging"]
    result = run_cli("up", "staging", "--image-ref", image(3), "--verify")
    assert result.exit_code == ExitCode.ROLLED_BACK, result.output
    assert "error ratio 25.00% > 1.00%" in result.stderr
    assert staging.outputs()["imageRef"] == image(2)
    assert staging.config["shipsafe:rollback"] == "true"
    assert staging.outputs()["migrationJob"] is None  # the rollback ran no migration
    assert staging.migrations == [sha(1), sha(2), sha(3)]
    message = staging.history()[0].message
    assert message.startswith(f"rollback to update 2 ({sha(2)[:12]}): verification failed: error ratio")


def test_up_verify_with_too_little_traffic_is_inconclusive_not_a_pass(run_cli, stacks, metrics):
    metrics.requests = 12
    result = run_cli("up", "staging", "--image-ref", image(3), "--verify")
    assert result.exit_code == ExitCode.VERIFICATION_INCONCLUSIVE
    assert "only 12 requests" in result.stderr
    assert stacks["staging"].outputs()["imageRef"] == image(3)  # nothing shows it is bad: not rolled back


def test_verify_alone_reports_failure_without_rolling_back(run_cli, stacks, metrics):
    metrics.p99 = 1.7
    result = run_cli("verify", "staging")
    assert result.exit_code == ExitCode.VERIFICATION_FAILED
    assert "p99 latency 1.700s > 0.500s" in result.stderr
    assert "requests=500 error_ratio=0.00% p99=1.700s" in result.output
    assert len(stacks["staging"].records) == 2


def test_verify_when_nothing_was_ever_deployed(run_cli, stacks):
    stacks["qa"] = MemoryStack("qa", config=dict(stacks["prod"].config))
    result = run_cli("verify", "qa")
    assert result.exit_code == ExitCode.FAILED
    assert "no appVersion output" in result.stderr


def test_rollback_defaults_to_the_previous_different_image(run_cli, stacks):
    result = run_cli("rollback", "staging", "--reason", "login broken")
    assert result.exit_code == 0, result.output
    staging = stacks["staging"]
    assert staging.outputs()["imageRef"] == image(1)
    assert staging.history()[0].message.startswith(f"rollback to update 1 ({sha(1)[:12]}): login broken")
    assert [kind for kind, _ in staging.policy_runs] == ["up"]


def test_the_next_normal_deploy_runs_migrations_again(run_cli, stacks):
    assert run_cli("rollback", "staging").exit_code == 0
    result = run_cli("up", "staging", "--image-ref", image(3))
    assert result.exit_code == 0, result.output
    staging = stacks["staging"]
    assert staging.config["shipsafe:rollback"] == "false"
    assert staging.outputs()["migrationJob"] == f"notes-migrate-{sha(3)[:12]}"


def test_a_config_only_redeploy_after_a_rollback_runs_no_migration(run_cli, stacks):
    staging = stacks["staging"]
    assert run_cli("rollback", "staging").exit_code == 0
    result = run_cli("up", "staging", "-m", "raise replicas")
    assert result.exit_code == 0, result.output
    assert staging.config["shipsafe:rollback"] == "true"
    assert staging.outputs()["imageRef"] == image(1)
    assert staging.outputs()["migrationJob"] is None
    refused = run_cli("up", "staging", "--git-sha", sha(3))
    assert refused.exit_code == ExitCode.FAILED
    assert "only applies to stacks that build their image" in refused.stderr


def test_rollback_to_an_explicit_version_or_sha(run_cli, stacks):
    staging = stacks["staging"]
    assert run_cli("up", "staging", "--image-ref", image(3)).exit_code == 0
    assert run_cli("rollback", "staging", "--to-version", "1").exit_code == 0
    assert staging.outputs()["imageRef"] == image(1)
    assert run_cli("rollback", "staging", "--to-sha", sha(2)[:10]).exit_code == 0
    assert staging.outputs()["imageRef"] == image(2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to-version", "9"], "no update with version 9"),
        (["--to-version", "2"], "which is what the stack runs now"),
        (["--to-sha", "abcdef0"], "no update of this stack deployed an image with SHA abcdef0"),
    ],
)
def test_rollback_refuses_impossible_targets(run_cli, args, message):
    result = run_cli("rollback", "staging", *args)
    assert result.exit_code == ExitCode.REFUSED
    assert message in result.stderr


def test_rollback_refuses_when_there_is_nothing_to_roll_back_to(run_cli, stacks):
    result = run_cli("rollback", "prod")
    assert result.exit_code == ExitCode.REFUSED
    assert "nothing to roll back to" in result.stderr
    assert len(stacks["prod"].records) == 1


def test_rollback_refuses_a_failed_target(run_cli, stacks):
    stacks["staging"].fail_next_up = True
    run_cli("up", "staging", "--image-ref", image(3))
    result = run_cli("rollback", "staging", "--to-version", "3")
    assert result.exit_code == ExitCode.REFUSED
    assert "update 3 did not succeed (result: failed)" in result.stderr


def test_history_table(run_cli):
    assert run_cli("rollback", "staging", "--reason", "bad release").exit_code == 0
    result = run_cli("history", "staging")
    assert result.exit_code == 0, result.output
    for expected in ("version", "succeeded", sha(2)[:12], "(rollback)", "Dev Eloper", "bad release"):
        assert expected in result.output


def test_promote_deploys_exactly_the_staging_digest(run_cli, stacks, app):
    result = run_cli("promote")
    assert result.exit_code == 0, result.output
    prod = stacks["prod"]
    assert app.checked == ["http://staging.test"]
    assert prod.outputs()["imageRef"] == stacks["staging"].outputs()["imageRef"] == image(2)
    assert prod.config["shipsafe:imageSource"] == "prebuilt"
    assert prod.config["shipsafe:gitSha"] == sha(2)
    assert prod.config["shipsafe:rollback"] == "false"
    assert [kind for kind, _ in prod.policy_runs] == ["preview", "up"]
    assert prod.policy_runs[1][1].config.name == "prod.json"
    assert image(2).split("@")[1] in prod.history()[0].message


def test_promote_defaults_to_the_stacks_whose_environment_says_so(run_cli, stacks, project_dir):
    # Renamed stacks: the defaults follow `shipsafe:environment`, not the names staging/prod.
    for old, new in (("staging", "qa"), ("prod", "live")):
        (project_dir / f"Pulumi.{old}.yaml").rename(project_dir / f"Pulumi.{new}.yaml")
        (project_dir / "policy" / "config" / f"{old}.json").rename(project_dir / "policy" / "config" / f"{new}.json")
        stacks[new] = dataclasses.replace(stacks.pop(old), name=new)
    result = run_cli("promote")
    assert result.exit_code == 0, result.output
    assert stacks["live"].outputs()["imageRef"] == stacks["qa"].outputs()["imageRef"]


def test_promote_without_from_refuses_when_two_stacks_are_staging(run_cli, stacks, project_dir):
    shutil.copy(project_dir / "Pulumi.staging.yaml", project_dir / "Pulumi.qa.yaml")
    result = run_cli("promote")
    assert result.exit_code == ExitCode.USAGE
    assert "stacks qa, staging all set shipsafe:environment: staging; name the stack with --from" in result.stderr
    assert len(stacks["prod"].records) == 1


def test_promote_refuses_to_pair_two_apps(run_cli, stacks):
    stacks["prod"].set_config(
        {"shipsafe:app": json.dumps({**json.loads(stacks["prod"].config["shipsafe:app"]), "name": "greeter"})}
    )
    result = run_cli("promote")
    assert result.exit_code == ExitCode.REFUSED, result.output
    assert "staging deploys the app notes and prod the app greeter" in result.stderr
    assert len(stacks["prod"].records) == 1


def test_promote_without_to_refuses_when_no_stack_is_production(run_cli, stacks, project_dir):
    (project_dir / "Pulumi.prod.yaml").unlink()
    result = run_cli("promote")
    assert result.exit_code == ExitCode.USAGE
    assert "no stack sets shipsafe:environment: production; name the stack with --to" in result.stderr


def test_promote_refuses_an_unhealthy_staging(run_cli, stacks, app):
    app.healthy = False
    result = run_cli("promote", "--staging-url", "http://127.0.0.1:8080")
    assert result.exit_code == ExitCode.SMOKE_FAILED
    assert "not healthy at http://127.0.0.1:8080" in result.stderr
    assert "GET /readyz: HTTP 503" in result.output
    assert len(stacks["prod"].records) == 1


def test_promote_refuses_a_dirty_build(run_cli, stacks):
    staging = stacks["staging"]
    staging.set_config({"shipsafe:imageSource": "build", "shipsafe:gitSha": sha(3)[:12] + "-dirty"})
    staging.remove_config(["shipsafe:imageRef"])  # the program refuses an imageRef on a stack that builds
    assert run_cli("up", "staging", "--git-sha", sha(3)[:12] + "-dirty").exit_code == 0
    result = run_cli("promote")
    assert result.exit_code == ExitCode.REFUSED
    assert "runs a dirty build" in result.stderr
    assert len(stacks["prod"].records) == 1


def test_promote_refuses_when_the_last_staging_update_failed(run_cli, stacks):
    stacks["staging"].fail_next_up = True
    run_cli("up", "staging", "--image-ref", image(3))
    result = run_cli("promote")
    assert result.exit_code == ExitCode.REFUSED
    assert "last update (3) did not succeed" in result.stderr


def test_promote_verify_rolls_prod_back(run_cli, stacks, metrics):
    metrics.error_ratio = 0.5
    result = run_cli("promote", "--verify")
    assert result.exit_code == ExitCode.ROLLED_BACK
    prod = stacks["prod"]
    assert prod.outputs()["imageRef"] == image(1)
    assert prod.config["shipsafe:rollback"] == "true"


def test_smoke_uses_the_stack_url_or_the_given_one(run_cli, app):
    assert run_cli("smoke", "staging").exit_code == 0
    assert run_cli("smoke", "staging", "--url", "http://127.0.0.1:3002").exit_code == 0
    assert app.checked == ["http://staging.test", "http://127.0.0.1:3002"]
    app.healthy = False
    result = run_cli("smoke", "staging")
    assert result.exit_code == ExitCode.SMOKE_FAILED


def test_promote_refuses_when_staging_no_longer_runs_the_expected_image(run_cli, stacks):
    result = run_cli("promote", "--expect-image-ref", image(1))
    assert result.exit_code == ExitCode.REFUSED
    assert "not the expected" in result.stderr
    assert run_cli("promote", "--expect-image-ref", image(2)).exit_code == 0


def test_prometheus_url_can_be_overridden_for_a_port_forward(run_cli, deploy_ctx):
    asked: list[str] = []
    fake = deploy_ctx.open_metrics

    def open_metrics(url: str):
        asked.append(url)
        return fake(url)

    deploy_ctx.open_metrics = open_metrics
    result = run_cli("--prometheus-url", "http://127.0.0.1:19090", "verify", "staging")
    assert result.exit_code == 0, result.output
    assert asked == ["http://127.0.0.1:19090"]
    assert "via http://127.0.0.1:19090" in result.output


def test_up_says_what_it_waits_for_and_the_await_limit_in_plain_lines(run_cli, stacks):
    result = run_cli("up", "staging", "--image-ref", image(3))
    assert result.exit_code == 0, result.output
    # The limit is the program's own worst case for this config (what it exports as deployTimeline).
    config = stacks["staging"].history()[0].config
    timeline = deploy_timeline(settings_from_config(config, lambda key: False))
    waiting = next(line for line in result.output.splitlines() if "waiting for" in line)
    assert waiting.startswith("pulumi up staging (policy pack on, migration Job first): waiting for backing services")
    assert "then migration Job ≤" in waiting
    assert waiting.endswith(f"; {duration(timeline.longest_up_seconds)} at most")
    assert "\x1b[" not in result.output  # not a terminal: no live display, no escape codes


def test_up_of_an_app_without_database_or_migrations_promises_no_server_or_job(run_cli, stacks):
    none = json.dumps({"mode": "none"})
    stacks["staging"].set_config({"shipsafe:postgres": none, "shipsafe:redis": none, "shipsafe:migration": "{}"})
    result = run_cli("up", "staging", "--image-ref", image(3))
    assert result.exit_code == 0, result.output
    waiting = next(line for line in result.output.splitlines() if "waiting for" in line)
    assert waiting.startswith("pulumi up staging (policy pack on): waiting for rolling updates ≤"), waiting
    assert "backing services" not in waiting and "migration" not in waiting, waiting


def test_a_rollback_waits_for_no_migration_job(run_cli):
    result = run_cli("rollback", "staging")
    assert result.exit_code == 0, result.output
    waiting = next(line for line in result.output.splitlines() if "waiting for" in line)
    assert waiting.startswith("pulumi up staging (rollback): waiting for backing services")
    assert "migration" not in waiting


class SlowStack(MemoryStack):
    """An update whose engine prints a line every 40 s of the fake clock."""

    clock: FakeClock

    def up(self, *, message, policy, on_output):
        for _ in range(3):
            self.clock.sleep(40)
            on_output("~ kubernetes:apps/v1:Deployment notes-web updating")
        return super().up(message=message, policy=policy, on_output=on_output)


def test_plain_output_says_how_long_is_left_while_the_engine_runs(run_cli, stacks, clock):
    slow = SlowStack("staging", config=stacks["staging"].get_config(), _outputs=stacks["staging"].outputs())
    slow.clock = clock
    stacks["staging"] = slow
    result = run_cli("up", "staging", "--image-ref", image(3))
    assert result.exit_code == 0, result.output
    limit = deploy_timeline(settings_from_config(slow.get_config(), lambda key: False)).longest_up_seconds
    notices = [line for line in result.output.splitlines() if "elapsed" in line]
    assert notices == [
        f"  … pulumi up staging (policy pack on, migration Job first): {duration(s)} elapsed, at most "
        f"{duration(limit - s)} left"
        for s in (40, 80, 120)
    ]
    assert "✓ pulumi up staging (policy pack on, migration Job first) (2m00s)" in result.output


def test_verify_lines_say_how_much_is_left_until_the_watchs_deadline(run_cli, stacks):
    result = run_cli("verify", "staging")
    assert result.exit_code == 0, result.output
    deadline = verification_seconds(verification_of(stacks["staging"].get_config()))
    assert deadline > 30, "the 30 s window, then its last queries"
    waiting = f"verify {sha(2)} on staging: waiting for 3 measurements, one every 10s; {duration(deadline)} at most"
    assert waiting in result.output
    measured = re.findall(r"t=\s*([\d.]+)s .*\(at most (\S+) left\)", result.output)
    assert len(measured) == 3
    assert all(left == duration(deadline - float(t) - SETTLE_SECONDS) for t, left in measured)


@pytest.mark.parametrize(
    ("args", "code"),
    [(["verify", "staging"], ExitCode.VERIFICATION_FAILED), (["up", "staging", "--verify"], ExitCode.ROLLED_BACK)],
)
def test_a_prometheus_too_slow_to_verify_within_the_deadline_fails_closed(
    run_cli, stacks, metrics, clock, monkeypatch, args, code
):
    answer = metrics.query

    def nine_seconds_late(promql: str, at: float, *, timeout_seconds: float | None = None) -> list[Sample]:
        assert timeout_seconds is not None
        clock.now += min(9.0, timeout_seconds)
        return answer(promql, at)

    monkeypatch.setattr(metrics, "query", nine_seconds_late)
    started = clock.now
    result = run_cli(*args)
    assert result.exit_code == code, result.output  # both make the pipeline (or the tool itself) roll back
    assert code.aftermath in (Aftermath.MAYBE_BAD, Aftermath.ROLLED_BACK)
    assert "no verdict within the verification deadline of 90s" in result.stderr
    assert "PASSED" not in result.output
    assert clock.now - started <= 90, "the 30 s window and its 60 s overrun, on the fake clock"


def _colours(output: str) -> set[str]:
    """SGR foreground/background colour parameters in the output (bold, dim and cursor moves are not colours)."""
    params = {p for codes in re.findall(r"\x1b\[([0-9;]*)m", output) for p in codes.split(";")}
    return {p for p in params if p.isdigit() and (30 <= int(p) <= 49 or 90 <= int(p) <= 107)}


@pytest.mark.parametrize("no_color", [False, True])
def test_a_terminal_gets_the_live_display_and_no_color_is_honoured(monkeypatch, deploy_ctx, no_color):
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    screen = io.StringIO()
    deploy_ctx.console = Console(file=screen, width=200, force_terminal=True)
    result = CliRunner().invoke(cli, ["rollback", "staging"], obj=deploy_ctx)
    assert result.exit_code == 0, result.output
    output = screen.getvalue()
    assert "at most" in output and "left" in output  # the live bar's countdown column
    assert bool(_colours(output)) is not no_color


# ── one command: every subcommand, -s/--stack, JSON documents checked against their schemas ────────────────────

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
EVERY_COMMAND = [
    ["preview"],
    ["render"],
    ["diff"],
    ["up"],
    ["promote"],
    ["smoke"],
    ["verify"],
    ["history"],
    ["rollback"],
    ["init"],
    ["mirror"],
    ["status"],
    ["destroy"],
    ["config", "validate"],
    ["exit-codes"],
    ["completion"],
]


def schema_checked(name: str, stdout: str) -> dict:
    """The command's stdout parsed as one JSON document that its schema in docs/schemas/ accepts."""
    document = json.loads(stdout)
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)
    ]
    assert not errors, errors
    return document


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=" ".join)
def test_every_command_of_the_issue_is_reachable(run_cli, command):
    result = run_cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {' '.join(command)}" in result.output


@pytest.mark.parametrize("args", [["staging"], ["-s", "staging"], ["--stack", "staging"], ["staging", "-s", "staging"]])
def test_the_stack_is_an_argument_or_dash_s(run_cli, args):
    result = run_cli("history", *args)
    assert result.exit_code == 0, result.output
    assert "history of staging" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "the stack is required: give STACK or -s/--stack STACK"), (["staging", "-s", "prod"], "two stacks given")],
)
def test_no_stack_or_two_different_stacks_is_a_usage_error(run_cli, args, message):
    result = run_cli("history", *args)
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr


def test_history_json_follows_its_schema(run_cli, stacks):
    assert run_cli("rollback", "-s", "staging", "--reason", "bad release").exit_code == 0
    result = run_cli("history", "-s", "staging", "--output", "json")
    assert result.exit_code == 0, result.output
    document = schema_checked("history", result.stdout)
    assert [u["version"] for u in document["updates"]] == [3, 2, 1]
    newest = document["updates"][0]
    assert newest["rollback"] is True and newest["imageRef"] == image(1) and newest["gitSha"] == sha(1)
    assert "bad release" in newest["message"]
    assert document["updates"][1]["imageRef"] == image(2)


def test_verify_json_follows_its_schema_and_keeps_the_failure_code(run_cli, metrics):
    metrics.error_ratio = 0.25
    result = run_cli("verify", "-s", "staging", "--output", "json")
    assert result.exit_code == ExitCode.VERIFICATION_FAILED
    document = schema_checked("verify", result.stdout)
    assert (document["outcome"], document["exitName"], document["version"]) == ("failed", "VERIFICATION_FAILED", sha(2))
    assert document["measurements"], "the measurements that led to the verdict"
    assert all((m["errorRatio"], m["phase"]) == (0.25, "failed") for m in document["measurements"])
    assert "Verifying version" in result.stderr and "Verifying version" not in result.stdout


def test_status_json_says_what_runs_where_and_the_last_verification(run_cli, stacks, metrics):
    assert run_cli("verify", "staging").exit_code == 0
    metrics.error_ratio = 0.5
    assert run_cli("promote", "--verify").exit_code == ExitCode.ROLLED_BACK
    result = run_cli("status", "staging", "prod", "-s", "qa", "--output", "json")
    assert result.exit_code == 0, result.output
    staging, prod, qa = schema_checked("status", result.stdout)["stacks"]
    assert (staging["release"], staging["imageRef"], staging["appUrl"]) == (sha(2), image(2), "http://staging.test")
    assert staging["lastVerification"]["outcome"] == "passed" and staging["lastVerification"]["version"] == sha(2)
    # prod was promoted to release 2, failed verification and runs release 1 again.
    assert prod["release"] == sha(1) and prod["lastUpdate"]["rollback"] is True
    assert prod["lastVerification"]["outcome"] == "failed, rolled back"
    assert prod["lastVerification"]["version"] == sha(2), "the verdict is about the version that was verified"
    assert qa == {**qa, "exists": False, "release": None, "lastUpdate": None}


def test_status_table_covers_every_stack_file_by_default(run_cli, project_dir):
    for stack in ("staging", "prod"):
        (project_dir / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    result = run_cli("status")
    assert result.exit_code == 0, result.output
    assert "staging" in result.output and "prod" in result.output and sha(2)[:12] in result.output


class StackFileWritingStack(MemoryStack):
    """Writes its config into the stack file on every `set_config`, as the Automation API's `config set-all` does."""

    stack_file: Path

    def set_config(self, values):
        super().set_config(values)
        self.stack_file.write_text(yaml.safe_dump({"config": self.config}))


def test_preview_repins_from_a_temporary_copy_and_never_writes_the_stack_file(run_cli, stacks, project_dir):
    committed = "# committed\nconfig:\n  shipsafe:imageSource: prebuilt\n"
    stack_file = project_dir / "Pulumi.staging.yaml"
    stack_file.write_text(committed)
    writing = StackFileWritingStack(
        "staging", config=stacks["staging"].get_config(), _outputs=stacks["staging"].outputs()
    )
    writing.records = stacks["staging"].records
    writing.stack_file = stack_file
    stacks["staging"] = writing
    result = run_cli("preview", "-s", "staging", "--output", "json")
    assert result.exit_code == 0, result.output
    [overlay] = writing.previewed_overlays
    assert overlay["shipsafe:imageRef"] == image(2), "the preview ran with the release it runs"
    assert stack_file.read_text() == committed, "not even written and put back: a killed preview leaves it intact"
    document = schema_checked("preview", result.stdout)
    assert (document["mode"], document["changes"], document["result"]) == (
        "pulumi",
        {"same": 20, "update": 2},
        "passed",
    )


def test_the_temporary_stack_file_keeps_the_encryption_keys_and_disappears(tmp_path):
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text("encryptionsalt: v1:abc\nconfig:\n  shipsafe:gitSha: old\n  shipsafe:x: kept\n")
    with overlaid_stack_file(stack_file, {"shipsafe:gitSha": "new"}) as copy:
        assert copy is not None and Path(copy).parent != tmp_path
        document = yaml.safe_load(Path(copy).read_text())
    assert document == {"encryptionsalt": "v1:abc", "config": {"shipsafe:gitSha": "new", "shipsafe:x": "kept"}}
    assert not Path(copy).exists()
    with overlaid_stack_file(stack_file, {}) as copy:
        assert copy is None, "nothing to overlay: the stack file itself is read"


def test_a_failed_preview_still_prints_its_json_document(run_cli, project_dir):
    (project_dir / "policy" / "config" / "staging.json").unlink()
    result = run_cli("preview", "staging", "--output", "json")
    assert result.exit_code == ExitCode.FAILED
    document = schema_checked("preview", result.stdout)
    assert (document["result"], document["exitName"], document["changes"]) == ("failed", "FAILED", None)


# A run of each `--output json` command that fails before it has a result.
FAILING_JSON_RUNS = {
    "preview": ["preview", "qa"],
    "diff": ["diff", "staging"],
    "verify": ["verify", "qa"],
    "history": ["history", "qa"],
    "status": ["status", "--no-such-option"],
    "config validate": ["config", "validate", "--no-such-option"],
    "stack list": ["stack", "list", "--no-such-option"],
}


def test_every_json_command_has_a_failing_run_below():
    assert set(FAILING_JSON_RUNS) == set(json_commands())


@pytest.mark.parametrize("name", FAILING_JSON_RUNS)
def test_a_json_command_that_fails_prints_one_error_document_in_its_schema(run_cli, name):
    args = FAILING_JSON_RUNS[name]
    result = run_cli(*args[:-1], "--output", "json", args[-1])
    assert result.exit_code not in (0, None), result.output
    document = schema_checked(json_commands()[name], result.stdout)  # exactly one document: json.loads takes one
    assert (document["command"], document["result"], document["exitCode"]) == (name, "failed", result.exit_code)
    assert document["error"]["message"] in result.stderr


@pytest.mark.slow
def test_a_config_error_document_names_every_bad_key():
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)
    settings = ["--set", "workloads.web.replicas=abc", "--set", "rollout.maxSurge=-1"]
    result = CliRunner().invoke(cli, ["diff", "staging", *settings, "--output", "json"], obj=context)
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    problems = schema_checked("diff", result.stdout)["error"]["problems"]
    named = sorted(problem.split(" ")[0] for problem in problems)
    assert named == ["shipsafe:rollout.maxSurge", "shipsafe:workloads.web.replicas"]


def test_config_validate_json_lists_each_stack_and_its_bad_keys(tmp_path):
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml", "__main__.py"):
        shutil.copy(REPO / name, tmp_path)
    shutil.copytree(REPO / "policy" / "config", tmp_path / "policy" / "config")
    with (tmp_path / "Pulumi.staging.yaml").open("a") as stack_file:
        stack_file.write("  shipsafe:replicaz: 3\n")
    context = DeployContext(open_stack=MemoryStacks(), project_dir=tmp_path)
    result = CliRunner().invoke(cli, ["config", "validate", "--output", "json"], obj=context)
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    document = schema_checked("config-validate", result.stdout)
    assert document["exitName"] == "CONFIG_ERROR"
    prod, staging = document["stacks"]
    assert prod == {"stack": "prod", "valid": True, "problems": []}
    assert staging["valid"] is False and staging["problems"][0].startswith("shipsafe:replicaz is not a known setting")


def test_offline_preview_json_of_a_config_error_names_the_key():
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)
    args = ["preview", "staging", "--offline", "--set", "workloads.web.replicas=abc", "--output", "json"]
    result = CliRunner().invoke(cli, args, obj=context)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    document = schema_checked("preview", result.stdout)
    assert document["phases"] == [] and document["exitName"] == "CONFIG_ERROR"
    [problem] = document["error"]["problems"]
    assert problem.startswith("shipsafe:workloads.web.replicas = 'abc'")


@pytest.mark.slow
def test_offline_preview_json_of_the_real_stack_follows_its_schema(tmp_path):
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)
    result = CliRunner().invoke(cli, ["preview", "-s", "prod", "--offline", "--output", "json"], obj=context)
    assert result.exit_code == 0, result.output
    document = schema_checked("preview", result.stdout)
    assert document["mode"] == "offline" and document["exitName"] == "OK"
    assert [(phase["phase"], phase["kubernetes"]) for phase in document["phases"]] == [
        (phase, server) for phase in ("first-preview", "after-up", "later-preview") for server in ("1.30", "1.35")
    ]
    assert all(phase["mandatory"] == 0 for phase in document["phases"])
    assert Path(document["manifests"]) == REPO / "out" / "prod" / "manifests.yaml"
    assert "Policy pack shipsafe on stack prod" in result.stderr


@pytest.mark.slow
def test_offline_preview_json_names_the_violation_and_the_exit_code():
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)
    undigested = "imageRef=registry.example.com/shipsafe/notes:3f9c2a1b7d4e"
    args = ["preview", "prod", "--offline", "--set", undigested, "--output", "json"]
    result = CliRunner().invoke(cli, args, obj=context)
    assert result.exit_code == ExitCode.POLICY_VIOLATION
    document = schema_checked("preview", result.stdout)
    assert document["exitName"] == "POLICY_VIOLATION" and document["result"] == "failed"
    mandatory = [v for phase in document["phases"] for v in phase["violations"] if v["level"] == "mandatory"]
    assert mandatory and all("@sha256" in v["message"] for v in mandatory)


def _render_directory(directory: Path) -> None:
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)
    result = CliRunner().invoke(cli, ["render", "staging", "--output-dir", str(directory)], obj=context)
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_diff_against_a_saved_render_shows_exactly_the_change(tmp_path):
    _render_directory(tmp_path / "before")
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)
    against = ["diff", "staging", "--against-render", str(tmp_path / "before")]
    same = CliRunner().invoke(cli, [*against, "--exit-code"], obj=context)
    assert same.exit_code == 0, same.output
    assert "no change to the rendered objects of staging" in same.stdout
    changed = CliRunner().invoke(
        cli, [*against, "--set", "workloads.web.replicas=3", "--output", "json", "--exit-code"], obj=context
    )
    assert changed.exit_code == ExitCode.CHANGES_FOUND, changed.output
    document = schema_checked("diff", changed.stdout)
    assert document["changed"] is True and document["against"]["kind"] == "render"
    [deployment] = [o for o in document["objects"] if o["kind"] == "Deployment"]
    assert (deployment["namespace"], deployment["name"], deployment["change"]) == (
        "notes-staging",
        "notes-web",
        "changed",
    )
    assert "-  replicas: 2\n+  replicas: 3\n" in deployment["diff"]


def test_destroy_changes_nothing_and_names_the_explicit_unprotect_step():
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)
    result = CliRunner().invoke(cli, ["destroy", "-s", "prod"], obj=context)
    assert result.exit_code == ExitCode.REFUSED
    assert "shipsafe does not destroy stacks; nothing was changed in prod" in result.stderr
    [unprotect] = [line.strip() for line in result.stdout.splitlines() if "pulumi state unprotect" in line]
    for name in ("notes-postgres-statefulset", "notes-redis-statefulset", "notes-postgres-password"):
        assert f"::{name}'" in unprotect
    assert unprotect.startswith("pulumi state unprotect -s prod 'urn:pulumi:prod::shipsafe::")
    assert "  pulumi destroy -s prod" in result.stdout.splitlines()[-1]
