"""The Prometheus client and `deploy verify` against a fake Prometheus on 127.0.0.1 answering what a real one never
would: every malformed, oversized or slow answer ends as one line with exit code 12, every impossible value as an
inconclusive verdict, never a pass and never a traceback."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from components.settings import Verification
from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.prometheus import MAX_ANSWER_BYTES, PrometheusClient
from deploy.terminal import TerminalConsole
from deploy.verify import Outcome, Target, watch
from tests.deploy.conftest import FakeClock
from tests.deploy.fake_prometheus import Body, Drip, Endless, Late, Reply, fake_prometheus, vector
from tests.deploy.memory_stack import MemoryStack, MemoryStacks

MIB = 1 << 20


def failure(reply: Reply, **client: float) -> ShipsafeError:
    with fake_prometheus(lambda query: reply) as prometheus, pytest.raises(ShipsafeError) as error:
        PrometheusClient(prometheus.url, **client).query("up", 1700000000.0)  # type: ignore[arg-type]
    assert error.value.exit_code is ExitCode.PROMETHEUS_UNAVAILABLE
    assert "\n" not in error.value.message
    return error.value


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>bad gateway</html>", "the answer is not JSON"),
        (b"\xff\xfe{", "the answer is not JSON"),
        (b"[" * 100_000, "the answer is not JSON"),
        (b"[1, 2]", "the answer is not a JSON object"),
        (json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(), "instant vector"),
        (json.dumps({"status": "success", "data": {"resultType": "vector", "result": [7]}}).encode(), "string labels"),
        (
            json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, 2]}]}}
            ).encode(),
            'no [time, "value"] pair',
        ),
        (
            json.dumps(
                {
                    "status": "success",
                    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "many"]}]},
                }
            ).encode(),
            "not a number",
        ),
    ],
)
def test_malformed_answers_end_as_one_line(body, why):
    assert why in failure(Body(body)).message


def test_an_error_status_names_prometheus_own_error():
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}).encode()
    message = failure(Body(body, status=400)).message
    assert "HTTP 400, bad_data: parse error at char 3" in message


def test_impossible_values_reach_the_verifier_as_numbers():
    answer = vector(({"route": "/a"}, "NaN"), ({"route": "/b"}, "-Inf"), ({"route": "/c"}, "-3"), ({}, "+Inf"))
    with fake_prometheus(lambda query: answer) as prometheus:
        samples = PrometheusClient(prometheus.url).query("q", 1700000000.0)
    assert [str(s.value) for s in samples] == ["nan", "-inf", "-3.0", "inf"]
    assert samples[0].labels == {"route": "/a"}


def test_an_answer_over_the_cap_is_refused_from_its_declared_length():
    error = failure(Endless(200 * MIB, declare_length=True))
    assert f"answer of {200 * MIB} bytes is over the {MAX_ANSWER_BYTES}-byte cap" in error.message


def test_an_undeclared_huge_answer_is_read_only_up_to_the_cap():
    tracemalloc.start()
    try:
        with fake_prometheus(lambda query: Endless(200 * MIB)) as prometheus:
            with pytest.raises(ShipsafeError, match="over the 1048576-byte cap"):
                PrometheusClient(prometheus.url).query("q", 1700000000.0)
            time.sleep(0.2)  # let the server notice the closed connection
            sent = prometheus.sent.body_bytes
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sent < 32 * MIB, sent  # socket buffers, not the 200 MiB
    assert peak < 8 * MIB, peak


@pytest.mark.slow
def test_a_dripping_server_cannot_hold_the_client_past_its_deadline():
    started = time.monotonic()
    error = failure(Drip(every_seconds=4), deadline_seconds=1.5)
    assert time.monotonic() - started < 3
    assert "no complete answer within 1.5s" in error.message


def test_no_answer_at_all_is_the_same_exit_code():
    with pytest.raises(ShipsafeError) as error:
        PrometheusClient("http://127.0.0.1:9").query("up", 1700000000.0)
    assert error.value.exit_code is ExitCode.PROMETHEUS_UNAVAILABLE
    assert "ConnectError" in error.value.message


# ── `deploy verify` end to end against the fake ───────────────────────────────────────────────────────────────

GOOD = {"requests": "500", "5..": "0", "count": "500", "p99": "0.05"}


def healthy_with(**bad: str | Reply) -> Callable[[str], Reply]:
    """Answers the verifier's queries for one route (GET /notes) with enough requests, `bad` replacing some."""
    values: dict[str, str | Reply] = {**GOOD, **bad}
    route = {"method": "GET", "route": "/notes"}

    def answer(query: str) -> Reply:
        if query.startswith("histogram_quantile"):
            key, labels = "p99", route
        elif "_count" in query:
            key, labels = "count", route
        elif 'status=~"5' in query:
            key, labels = "5..", route if query.startswith("sum by") else {}
        else:
            key, labels = "requests", {}
        value = values[key]
        return value if isinstance(value, Reply) else vector((labels, value))

    return answer


def verify_against(
    answer: Callable[[str], Reply],
    tmp_path: Path,
    deadline_seconds: float = 10.0,
    *,
    userinfo: str | None = None,
    args: tuple[str, ...] = (),
) -> Result:
    stack = MemoryStack.deployed("staging", [1])
    with fake_prometheus(answer) as prometheus:
        url = prometheus.url.replace("://", f"://{userinfo}@") if userinfo else prometheus.url
        verification = {"prometheusUrl": url, "windowSeconds": 10, "intervalSeconds": 2, "minRequests": 50}
        stack.set_config({"shipsafe:verification": json.dumps(verification)})
        clock = FakeClock()
        context = DeployContext(
            open_stack=MemoryStacks(staging=stack),
            project_dir=tmp_path,
            open_metrics=lambda url: PrometheusClient(url, deadline_seconds=deadline_seconds),
            console=TerminalConsole(width=200),
            clock=clock,
            sleep=clock.sleep,
        )
        return CliRunner().invoke(cli, ["verify", "staging", *args], obj=context)


def test_healthy_answers_pass(tmp_path):
    result = verify_against(healthy_with(), tmp_path)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "bad",
    [
        {"5..": Body(vector().body)},  # the app's 5xx series at 0 are missing: an empty vector is not "no errors"
        {"5..": "NaN"},
        {"5..": "-12"},
        {"p99": "-Inf"},
        {"p99": "NaN"},
        {"requests": Body(vector(({}, "500"), ({}, "600")).body)},  # two series after sum(): wrong shape
        {"count": Body(vector().body)},  # no route series, yet a p99 for GET /notes
    ],
)
def test_impossible_answers_with_enough_requests_are_inconclusive(bad, tmp_path):
    result = verify_against(healthy_with(**bad), tmp_path)
    assert result.exit_code == ExitCode.VERIFICATION_INCONCLUSIVE, result.output
    assert "bad data > consecutiveErrorLimit 4" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Body(b"<html>502 Bad Gateway</html>", status=502), "HTTP 502: the answer is not JSON"),
        (Endless(200 * MIB), "over the 1048576-byte cap"),
        (Drip(every_seconds=4), "no complete answer within 1.5s"),
    ],
)
def test_broken_answers_end_verify_with_one_line_and_exit_12(reply, why, tmp_path):
    started = time.monotonic()
    result = verify_against(healthy_with(requests=reply), tmp_path, deadline_seconds=1.5)
    assert time.monotonic() - started < 5
    assert result.exit_code == ExitCode.PROMETHEUS_UNAVAILABLE, result.output
    assert isinstance(result.exception, SystemExit)  # rendered by the CLI, no traceback
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: Prometheus at http://127.0.0.1:"), errors
    assert why in errors[0]


def test_credentials_in_the_prometheus_url_are_never_printed():
    with fake_prometheus(lambda query: Body(b"not json")) as prometheus, pytest.raises(ShipsafeError) as error:
        url = prometheus.url.replace("://", "://verify:hunter2@")
        PrometheusClient(url).query("up", 1700000000.0)
    assert "hunter2" not in error.value.message and "://***@127.0.0.1" in error.value.message


@pytest.mark.slow
def test_late_answers_end_the_watch_failed_at_its_deadline_over_real_sockets():
    """Each answer 1.5 s late (issue 17: 9 s): a 10 s window's watch given a 5 s deadline ends failed by then."""
    answer = healthy_with()
    settings = Verification(prometheus_url="http://unused", window_seconds=10, interval_seconds=2, min_requests=50)
    with fake_prometheus(lambda query: Late(answer(query), 1.5)) as prometheus:
        client = PrometheusClient(prometheus.url)  # its own 10 s per query: the watch's deadline binds first
        started = time.monotonic()
        verdict = watch(client, Target("v1"), settings, on_measurement=lambda _: None, deadline_seconds=5)
        took = time.monotonic() - started
    assert verdict.outcome is Outcome.FAILED
    assert "no verdict within the verification deadline of 5s" in verdict.reasons[-1]
    assert 5 <= took < 6.5, took
