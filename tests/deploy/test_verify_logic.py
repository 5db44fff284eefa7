"""Verification decisions with scripted Prometheus answers and a fake clock (real Prometheus: separate module)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import pytest

from components.settings import Settings, Verification, parse_settings
from components.timeline import deploy_timeline, verification_seconds
from deploy.errors import ExitCode, ShipsafeError
from deploy.prometheus import Sample
from deploy.verify import (
    SETTLE_SECONDS,
    Measurement,
    Outcome,
    Phase,
    Queries,
    Target,
    Verdict,
    settings_from_config,
    watch,
)
from harness.stack_config import read_stack_config
from tests.deploy.conftest import FakeClock
from tests.support.services import APP_DIR

TARGET = Target("abc1234", "notes-prod")
SETTINGS = Verification(
    prometheus_url="http://127.0.0.1:9090",
    window_seconds=60,
    interval_seconds=15,
    max_error_ratio=0.01,
    max_p99_latency_seconds=0.5,
    min_requests=100,
    min_route_requests=20,
)
NAN, INF = float("nan"), float("inf")


@dataclass
class Interval:
    """What Prometheus holds for one interval: served requests, errors, and per route (requests, p99)."""

    requests: float = 500
    server_errors: float = 0
    client_errors: float = 0
    routes: Mapping[tuple[str, str], tuple[float, float]] = field(
        default_factory=lambda: {("GET", "/notes"): (400, 0.05), ("POST", "/notes"): (100, 0.1)}
    )
    route_server_errors: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """Server errors (5xx) per route; 0 for a route not named."""
    raw: dict[str, list[Sample]] = field(default_factory=dict)
    """Answers that replace the consistent ones, by Queries field name."""

    def answer(self, name: str) -> list[Sample]:
        if name in self.raw:
            return self.raw[name]
        if name in ("requests", "server_errors", "client_errors"):
            return [Sample({}, getattr(self, name))]
        if name == "route_server_errors":
            return [Sample({"method": m, "route": r}, self.route_server_errors.get((m, r), 0)) for m, r in self.routes]
        index = 0 if name == "route_requests" else 1
        return [Sample({"method": m, "route": r}, values[index]) for (m, r), values in self.routes.items()]


@dataclass
class ScriptedMetrics:
    """Answers each measurement from its Interval (the last one repeats) and records every (query, time)."""

    intervals: list[Interval]
    interval_seconds: int = SETTINGS.interval_seconds
    asked: list[tuple[str, float]] = field(default_factory=list)

    def query(self, promql: str, at: float, *, timeout_seconds: float | None = None) -> list[Sample]:
        self.asked.append((promql, at))
        queries = Queries.for_target(TARGET, self.interval_seconds)
        name = next(f.name for f in fields(queries) if getattr(queries, f.name) == promql)
        number = len({time for _, time in self.asked}) - 1
        return self.intervals[min(number, len(self.intervals) - 1)].answer(name)


def run(*intervals: Interval, settings: Verification = SETTINGS) -> tuple[Verdict, list[Measurement], FakeClock]:
    seen: list[Measurement] = []
    clock = FakeClock()
    metrics = ScriptedMetrics(list(intervals), settings.interval_seconds)
    verdict = watch(
        metrics, TARGET, settings, on_measurement=seen.append, clock=clock, sleep=clock.sleep, wall_clock=lambda: 5000.0
    )
    return verdict, seen, clock


def parse_stack_settings(stack: str) -> Settings:
    _, config = read_stack_config(stack)
    return parse_settings({key.removeprefix("shipsafe:"): value for key, value in config.items()})


def settings(**changes: Any) -> Verification:
    return SETTINGS.model_copy(update=changes)


def test_healthy_version_passes_after_one_measurement_per_interval():
    verdict, seen, clock = run(Interval())
    assert verdict.outcome is Outcome.PASSED, verdict.reasons
    assert [m.elapsed_seconds for m in seen] == [15, 30, 45, 60]
    assert clock.sleeps == [15 + SETTLE_SECONDS, 15, 15, 15]  # each interval queried once its scrapes are stored
    assert {m.phase for m in seen} == {Phase.SUCCESSFUL}


def test_each_measurement_covers_only_its_own_interval():
    metrics = ScriptedMetrics([Interval()])
    clock = FakeClock()
    watch(
        metrics,
        TARGET,
        SETTINGS,
        on_measurement=lambda _: None,
        clock=clock,
        sleep=clock.sleep,
        wall_clock=lambda: 5000.0,
    )
    assert sorted({time for _, time in metrics.asked}) == [5015.0, 5030.0, 5045.0, 5060.0]  # tiles the window
    assert {query.rsplit("[", 1)[1].split("]")[0] for query, _ in metrics.asked} == {"15s"}


def test_one_burst_of_errors_neither_rolls_back_nor_hides():
    burst = Interval(server_errors=10)  # 2 % of one interval's 500 requests
    verdict, seen, _ = run(Interval(), burst, Interval())
    assert [m.phase for m in seen] == [Phase.SUCCESSFUL, Phase.FAILED, Phase.SUCCESSFUL, Phase.SUCCESSFUL]
    assert verdict.outcome is Outcome.PASSED
    assert "1 failed within failureLimit 1: t=30s error ratio 2.00% > 1.00%" in verdict.reasons[-1]
    assert "failed: error ratio 2.00% > 1.00%" in seen[1].describe()


def test_failed_measurements_beyond_the_failure_limit_fail_at_once():
    verdict, seen, _ = run(Interval(server_errors=10), Interval(), Interval(server_errors=50))
    assert verdict.outcome is Outcome.FAILED
    assert len(seen) == 3
    assert verdict.reasons == ("error ratio 10.00% > 1.00%", "2 failed measurements > failureLimit 1")
    strict, seen, _ = run(Interval(server_errors=10), settings=settings(failure_limit=0))
    assert strict.outcome is Outcome.FAILED
    assert len(seen) == 1


def test_p99_is_judged_on_the_slowest_route_with_enough_requests():
    routes = {
        ("GET", "/notes"): (450, 0.02),
        ("POST", "/notes"): (40, 0.81),
        ("GET", "/notes/{note_id}"): (10, 9.0),  # too few requests to judge its p99
        ("HEAD", "/notes"): (0, NAN),  # no requests: its NaN means nothing
    }
    verdict, _, _ = run(Interval(routes=routes), settings=settings(failure_limit=0))
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons[0] == "p99 latency 0.810s > 0.500s on POST /notes"


# Issue 17: every POST failed, posts 5 % of the traffic, and the global ratio (5.00 %) passed a 5 % threshold.
WRITES_ALL_FAIL = Interval(
    requests=1000,
    server_errors=50,
    routes={("GET", "/notes"): (950, 0.02), ("POST", "/notes"): (50, 0.02)},
    route_server_errors={("POST", "/notes"): 50},
)


def test_a_route_whose_every_request_fails_fails_even_at_five_percent_of_the_traffic():
    verdict, seen, _ = run(WRITES_ALL_FAIL, settings=settings(max_error_ratio=0.05))
    assert seen[0].error_ratio == 0.05, "within the threshold overall"
    assert seen[0].phase is Phase.FAILED
    assert (seen[0].worst_error_route, seen[0].worst_route_error_ratio) == ("POST /notes", 1.0)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons[0] == "error ratio 100.00% > 5.00% on POST /notes"
    assert "error_ratio=5.00% (POST /notes 100.00%)" in seen[0].describe()


def test_a_route_is_judged_on_its_errors_with_the_same_minimum_as_its_p99():
    # 10 POSTs in the interval: below minRouteRequests, like a p99 of 10 requests; the whole still judges them.
    routes = {("GET", "/notes"): (490, 0.02), ("POST", "/notes"): (10, 0.02)}
    few = Interval(requests=500, server_errors=10, routes=routes, route_server_errors={("POST", "/notes"): 10})
    verdict, seen, _ = run(few, settings=settings(max_error_ratio=0.05))
    assert verdict.outcome is Outcome.PASSED, verdict.reasons
    assert seen[0].worst_route_error_ratio == 0.0 and seen[0].worst_error_route == "GET /notes"
    assert run(few, settings=settings(max_error_ratio=0.01, failure_limit=0))[0].outcome is Outcome.FAILED


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ([Sample({"method": "GET", "route": "/notes"}, 0)], "no series for POST /notes (which served 100 requests)"),
        ([Sample({"method": "GET", "route": "/notes"}, 0), Sample({"method": "POST", "route": "/notes"}, NAN)], "nan"),
    ],
)
def test_a_judged_route_without_its_server_error_series_is_bad_data(answer, why):
    # The app creates every route's 500 and 503 series at 0: a missing one is broken data, never "no errors".
    verdict, seen, _ = run(Interval(raw={"route_server_errors": answer}))
    assert seen[0].phase is Phase.ERROR and why in seen[0].reasons[0]
    assert verdict.outcome is Outcome.INCONCLUSIVE


@pytest.mark.parametrize(
    ("name", "answer", "why"),
    [
        ("requests", [], "requests on served routes: 0 series"),
        ("requests", [Sample({}, NAN)], "requests on served routes is nan"),
        ("requests", [Sample({}, 1), Sample({}, 600)], "requests on served routes: 2 series"),
        ("server_errors", [], "server errors (5xx): 0 series"),
        ("server_errors", [Sample({}, NAN)], "server errors (5xx) is nan"),
        ("server_errors", [Sample({}, -3)], "server errors (5xx) is -3"),
        ("server_errors", [Sample({}, -INF)], "server errors (5xx) is -inf"),
        ("route_p99", [Sample({"method": "GET", "route": "/notes"}, NAN)], "series for ['GET /notes']"),
        ("route_p99", [Sample({"method": "GET", "route": "/notes"}, 0.1)] * 2, "more than one series for GET /notes"),
        ("route_requests", [Sample({"route": "/notes"}, 500)], "without method and route labels"),
    ],
)
def test_missing_or_impossible_values_with_enough_traffic_are_never_a_pass(name, answer, why):
    verdict, seen, _ = run(Interval(raw={name: answer}))
    assert seen[0].phase is Phase.ERROR
    assert why in seen[0].reasons[0]
    assert verdict.outcome is Outcome.INCONCLUSIVE


@pytest.mark.parametrize("p99", [NAN, -INF, INF, -0.2])
def test_a_judged_route_without_a_finite_p99_does_not_vanish(p99):
    # PromQL's max() over routes would skip the NaN and report the healthy route's 0.05 s.
    routes = {("GET", "/notes"): (400, 0.05), ("POST", "/notes"): (100, p99)}
    verdict, seen, _ = run(Interval(routes=routes))
    assert seen[0].phase is Phase.ERROR
    assert "p99 of POST /notes (which served 100 requests)" in seen[0].reasons[0]
    assert verdict.outcome is Outcome.INCONCLUSIVE


def test_errors_in_a_row_beyond_the_limit_end_the_watch_early():
    broken = Interval(raw={"server_errors": []})
    verdict, seen, _ = run(broken, settings=settings(consecutive_error_limit=2, window_seconds=120))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert len(seen) == 3
    assert verdict.reasons[-1] == "3 measurements in a row had bad data > consecutiveErrorLimit 2"


def test_one_error_within_the_limit_keeps_watching_but_cannot_pass():
    verdict, seen, _ = run(Interval(), Interval(raw={"requests": []}), Interval())
    assert len(seen) == 4
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert verdict.reasons[-1] == "1 of 4 measurements could not be judged"


def test_a_failure_still_fails_after_bad_data():
    verdict, _, _ = run(Interval(raw={"requests": []}), Interval(server_errors=90), settings=settings(failure_limit=0))
    assert verdict.outcome is Outcome.FAILED


def test_quiet_intervals_are_inconclusive_even_with_terrible_values():
    verdict, seen, _ = run(Interval(requests=40, server_errors=40, routes={("GET", "/notes"): (40, 9.0)}))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert {m.phase for m in seen} == {Phase.INCONCLUSIVE}
    assert verdict.reasons[0] == "only 40 requests on served routes in 15s, 100 needed to judge"


def test_traffic_spread_too_thin_to_judge_any_p99_is_inconclusive():
    routes = {("GET", "/notes"): (19, 0.01), ("POST", "/notes"): (19, 0.01), ("GET", "/notes/{note_id}"): (90, 0.01)}
    verdict, _, _ = run(Interval(requests=128, routes=routes), settings=settings(min_route_requests=100))
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert "no route served 100 requests in 15s" in verdict.reasons[0]


def test_client_error_ratio_is_judged_only_when_configured():
    many_404s = Interval(client_errors=300)
    assert run(many_404s)[0].outcome is Outcome.PASSED
    verdict, _, _ = run(many_404s, settings=settings(max_client_error_ratio=0.2, failure_limit=0))
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons[0] == "client error ratio 60.00% > 20.00%"


def test_queries_count_only_served_routes_of_the_version_per_interval():
    queries = Queries.for_target(Target('v"1', "notes-prod"), 30)
    for promql in (getattr(queries, f.name) for f in fields(queries)):
        assert 'version="v\\"1"' in promql
        assert 'route!~"unmatched|/healthz|/readyz|/metrics"' in promql
        assert 'namespace="notes-prod"' in promql
        assert "[30s]" in promql
        assert "max(" not in promql and "or vector" not in promql
    assert 'status=~"5.."' in queries.server_errors and 'status=~"4.."' in queries.client_errors
    assert queries.route_p99.startswith("histogram_quantile(0.99, sum by (method, route, le) ")
    assert queries.route_requests.startswith("sum by (method, route) (increase(http_request_duration_seconds_count")
    assert queries.route_server_errors.startswith("sum by (method, route) (increase(http_requests_total{")
    assert 'status=~"5.."' in queries.route_server_errors
    assert "namespace" not in Queries.for_target(Target("v1"), 60).requests


def test_the_verifier_leaves_out_the_apps_unmatched_label():
    # The app is not an installed package: load its metrics module from its file.
    spec = importlib.util.spec_from_file_location("app_metrics", APP_DIR / "notes_app" / "metrics.py")
    assert spec is not None and spec.loader is not None
    metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metrics)
    assert f'route!~"{metrics.UNMATCHED_ROUTE}|' in Queries.for_target(TARGET, 30).requests


VALID = {"prometheusUrl": "http://prom:9090", "windowSeconds": 120, "intervalSeconds": 30, "minRequests": 20}


def test_settings_come_from_stack_config():
    settings = settings_from_config({"shipsafe:verification": json.dumps(VALID)})
    assert (settings.window_seconds, settings.min_requests, settings.max_error_ratio) == (120, 20, 0.01)
    assert (settings.failure_limit, settings.consecutive_error_limit, settings.max_client_error_ratio) == (1, 4, None)
    with pytest.raises(ShipsafeError, match="is not set"):
        settings_from_config({})


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"maxErrorRatio": 1}, "maxErrorRatio"),
        ({"maxErrorRatio": 0.51}, "maxErrorRatio"),
        ({"maxClientErrorRatio": 1}, "maxClientErrorRatio"),
        ({"maxP99LatencySeconds": "Infinity"}, "maxP99LatencySeconds"),
        ({"maxP99LatencySeconds": "NaN"}, "maxP99LatencySeconds"),
        ({"maxP99LatencySeconds": 31}, "maxP99LatencySeconds"),
        ({"minRequests": 1}, "minRequests"),
        ({"minRequests": 19}, "minRequests"),
        ({"minRouteRequests": 5}, "minRouteRequests"),
        ({"minRouteRequests": 30}, "minRouteRequests = 30, shipsafe:verification.minRequests = 20: a route's minimum"),
        ({"windowSeconds": 1}, "windowSeconds"),
        ({"windowSeconds": 100}, "windowSeconds = 100, shipsafe:verification.intervalSeconds = 30: the window"),
        ({"failureLimit": 4}, "failureLimit = 4, .*: failureLimit must be below the window's 4 measurements"),
        ({"consecutiveErrorLimit": -1}, "consecutiveErrorLimit"),
    ],
)
def test_settings_that_would_let_a_bad_release_pass_are_refused(change, named):
    with pytest.raises(ShipsafeError, match=named) as error:
        settings_from_config({"shipsafe:verification": json.dumps(VALID | change)})
    assert error.value.exit_code is ExitCode.CONFIG_ERROR
    assert "shipsafe:verification." in str(error.value), "the message names the full key"


def test_the_bounds_themselves_are_allowed():
    bounds = {"maxErrorRatio": 0.5, "maxClientErrorRatio": 0.5, "maxP99LatencySeconds": 30, "failureLimit": 3}
    settings = settings_from_config({"shipsafe:verification": json.dumps(VALID | bounds)})
    assert settings.max_p99_latency_seconds == 30


@dataclass
class SlowMetrics(ScriptedMetrics):
    """Every answer takes `answer_seconds` on the fake clock (issue 17: 9 s each); a query given less time than
    that times out at its timeout, as the Prometheus client does."""

    clock: FakeClock = field(default_factory=FakeClock)
    answer_seconds: float = 9.0
    timeouts: list[float] = field(default_factory=list)

    def query(self, promql: str, at: float, *, timeout_seconds: float | None = None) -> list[Sample]:
        assert timeout_seconds is not None and timeout_seconds > 0, "every query is bounded by the watch's deadline"
        self.timeouts.append(timeout_seconds)
        if timeout_seconds < self.answer_seconds:
            self.clock.now += timeout_seconds
            raise ShipsafeError("no complete answer", ExitCode.PROMETHEUS_UNAVAILABLE)
        self.clock.now += self.answer_seconds
        return super().query(promql, at)


def test_slow_answers_end_the_watch_failed_at_its_deadline_which_the_deploy_timeline_counts():
    stack = parse_stack_settings("prod")
    prod = stack.verification
    clock = FakeClock()
    metrics = SlowMetrics([Interval()], prod.interval_seconds, clock=clock)
    started = clock.now
    verdict = watch(
        metrics, TARGET, prod, on_measurement=lambda _: None, clock=clock, sleep=clock.sleep, wall_clock=lambda: 5.0
    )
    budget = deploy_timeline(stack).verification_seconds
    assert budget == verification_seconds(prod) < 700, "issue 17: up to 700 s before"
    assert clock.now - started <= budget
    assert verdict.outcome is Outcome.FAILED, "fails closed: the pipeline rolls back"
    assert f"no verdict within the verification deadline of {budget}s" in verdict.reasons[-1]
    assert "Prometheus answered too slowly" in verdict.reasons[-1]


def test_a_healthy_prometheus_is_never_cut_short_by_the_deadline():
    clock = FakeClock()
    metrics = SlowMetrics([Interval()], SETTINGS.interval_seconds, clock=clock, answer_seconds=0.05)
    verdict = watch(
        metrics, TARGET, SETTINGS, on_measurement=lambda _: None, clock=clock, sleep=clock.sleep, wall_clock=lambda: 5
    )
    assert verdict.outcome is Outcome.PASSED, verdict.reasons
    assert max(metrics.timeouts) <= verification_seconds(SETTINGS)
