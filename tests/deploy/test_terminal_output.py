"""Text from outside (update messages, git authors, Prometheus answers) reaches the terminal inert, and a Prometheus
URL's credentials reach it not at all: in the text output, in `--output json`'s stderr, and in errors."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from rich.table import Table

from deploy.errors import ExitCode
from deploy.prometheus import Sample, without_credentials
from deploy.terminal import TerminalConsole, printable
from tests.deploy.conftest import FakeMetrics
from tests.deploy.fake_prometheus import Body
from tests.deploy.memory_stack import MemoryStacks
from tests.deploy.test_prometheus_client import healthy_with, verify_against

# What a hostile author, message or Prometheus puts in its text: a colour (CSI), a window title (OSC ending in BEL),
# a screen clear, the 8-bit CSI (C1 0x9b), a carriage return that overprints, a backspace, a right-to-left override.
HOSTILE = "ok\x1b[31mRED\x1b]0;pwned\x07\x1b[2J\x9b1;1H\rPASSED\x08\u202eevil"
RAW = ("\x1b", "\x9b", "\x07", "\r", "\x08", "\u202e")


def assert_inert(text: str) -> None:
    assert not [c for c in RAW if c in text], repr(text)


def test_printable_shows_every_control_as_its_escape_and_keeps_the_layout():
    shown = printable(HOSTILE + "\n\tnext")
    assert_inert(shown)
    assert shown == ("ok\\x1b[31mRED\\x1b]0;pwned\\x07\\x1b[2J\\x9b1;1H\\x0dPASSED\\x08\\u202eevil\n\tnext")
    assert printable("Zoë → ✓ 日本") == "Zoë → ✓ 日本"  # printable Unicode stays


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("deploy\n::error title=x::Verification PASSED", "deploy\n\\x3a:error title=x::Verification PASSED"),
        ("  ::add-mask::x\n\u00a0::stop-commands::t", "  \\x3a:add-mask::x\n\u00a0\\x3a:stop-commands::t"),
        ("##[error]spoofed", "\\x23#[error]spoofed"),
        (
            "urn:pulumi:prod::notes::kubernetes:apps/v1:Deployment::web",
            "urn:pulumi:prod::notes::kubernetes:apps/v1:Deployment::web",
        ),
    ],
)
def test_a_line_from_outside_is_never_a_github_workflow_command(text: str, shown: str):
    # A CI log is read by the runner too: a line starting with "::" (after white space) is a workflow command.
    assert printable(text) == shown


def test_the_console_renders_every_string_it_prints_inert_tables_included():
    screen = io.StringIO()
    console = TerminalConsole(file=screen, width=200, force_terminal=False)
    table = Table()
    table.add_column("message")
    table.add_row(HOSTILE)
    console.print(HOSTILE)
    console.print(table)
    assert_inert(screen.getvalue())
    assert screen.getvalue().count("PASSED") == 2


def test_history_shows_a_hostile_author_and_message_inert(run_cli, stacks: MemoryStacks):
    staging = stacks["staging"]
    staging.records[-1] = replace(
        staging.records[-1], message=f"deploy {HOSTILE}", environment={"git.author": f"Mallory {HOSTILE}"}
    )
    result = run_cli("history", "staging")
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    assert "\\x1b[31mRED" in result.output  # shown, not acted on


def test_verify_shows_a_hostile_prometheus_label_inert(run_cli, metrics: FakeMetrics, monkeypatch):
    original = metrics.query

    def hostile_route(promql: str, at: float, *, timeout_seconds: float | None = None) -> list[Sample]:
        samples = original(promql, at, timeout_seconds=timeout_seconds)
        return [replace(s, labels={**s.labels, "route": HOSTILE} if s.labels else {}) for s in samples]

    monkeypatch.setattr(metrics, "query", hostile_route)
    metrics.p99 = 2.0  # a breach: the route is named in every measurement and in the verdict
    result = run_cli("verify", "staging")
    assert result.exit_code == ExitCode.VERIFICATION_FAILED, result.output
    assert_inert(result.output)
    assert "\\x9b1;1H" in result.output


def test_a_hostile_prometheus_error_is_shown_inert(tmp_path):
    answer = Body(json.dumps({"status": "error", "errorType": "bad_data", "error": HOSTILE}).encode(), status=400)
    result = verify_against(healthy_with(requests=answer), tmp_path)
    assert result.exit_code == ExitCode.PROMETHEUS_UNAVAILABLE, result.output
    assert_inert(result.output)
    assert "\\x1b]0;pwned" in result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://admin:S3cretPW@prometheus:9090", "http://***@prometheus:9090"),
        ("https://admin:S3cr@t/PW@prometheus/prom", "https://***@prometheus/prom"),  # "@" and "/" typed unencoded
        ("http://token@prometheus", "http://***@prometheus"),
        ("http://prometheus:9090/api?q=a@b", "http://prometheus:9090/api?q=a@b"),
    ],
)
def test_without_credentials(url: str, shown: str):
    assert without_credentials(url) == shown


@pytest.mark.parametrize("output", ["text", "json"])
def test_verify_never_prints_the_prometheus_credentials(output: str, tmp_path):
    result = verify_against(healthy_with(), tmp_path, userinfo="admin:S3cretPW", args=("--output", output))
    assert result.exit_code == 0, result.output
    assert "S3cretPW" not in result.output and "admin" not in result.output
    assert "via http://***@127.0.0.1:" in (result.stderr if output == "json" else result.stdout)


def test_an_unanswered_query_never_prints_the_prometheus_credentials(tmp_path):
    result = verify_against(healthy_with(requests=Body(b"<html>", status=502)), tmp_path, userinfo="admin:S3cretPW")
    assert result.exit_code == ExitCode.PROMETHEUS_UNAVAILABLE
    assert "S3cretPW" not in result.output and "http://***@127.0.0.1:" in result.stderr
