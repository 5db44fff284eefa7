"""Verification decisions with fake metrics and a fake clock (the real Prometheus test is separate)."""

from __future__ import annotations

import json

import pytest

from components.settings import Verification
from deploy.errors import ExitCode, ShipsafeError
from deploy.prometheus import _single_value
from deploy.verify import Measurement, Outcome, Queries, Target, judge, settings_from_config, watch
from tests.deploy.conftest import FakeClock, FakeMetrics

SETTINGS = Verification(
    prometheus_url="http://127.0.0.1:9090",
    window_seconds=60,
    interval_seconds=15,
    max_error_ratio=0.01,
    max_p99_latency_seconds=0.5,
    min_requests=100,
)


def run(metrics: FakeMetrics, clock: FakeClock):
    seen: list[Measurement] = []
    target = Target("abc1234", "notes-prod")
    verdict = watch(metrics, target, SETTINGS, on_measurement=seen.append, clock=clock, sleep=clock.sleep)
    return verdict, seen


def test_healthy_version_passes_only_at_the_end_of_the_window():
    clock = FakeClock()
    verdict, seen = run(FakeMetrics(requests=400, error_ratio=0.002, p99=0.2), clock)
    assert verdict.outcome is Outcome.PASSED
    assert [m.elapsed_seconds for m in seen] == [0, 15, 30, 45, 60]
    assert clock.sleeps == [15, 15, 15, 15]


def test_breach_fails_at_the_first_sample_with_enough_traffic():
    verdict, seen = run(FakeMetrics(requests=150, error_ratio=0.2), FakeClock())
    assert verdict.outcome is Outcome.FAILED
    assert len(seen) == 1
    assert verdict.reasons == ("error ratio 20.00% > 1.00%",)


def test_latency_breach_and_infinite_p99_fail():
    assert run(FakeMetrics(p99=0.8), FakeClock())[0].reasons == ("p99 latency 0.800s > 0.500s",)
    assert run(FakeMetrics(p99=float("inf")), FakeClock())[0].outcome is Outcome.FAILED


def test_idle_window_is_inconclusive_even_with_terrible_ratios():
    verdict, _ = run(FakeMetrics(requests=40, error_ratio=1.0, p99=9.0), FakeClock())
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert "only 40 requests" in verdict.reasons[0]


def test_no_data_at_all_is_inconclusive():
    verdict, _ = run(FakeMetrics(requests=None, error_ratio=None, p99=None), FakeClock())
    assert verdict.outcome is Outcome.INCONCLUSIVE


def test_no_error_series_means_no_errors():
    verdict = judge(Measurement(60, 500, None, 0.1), SETTINGS, final=True)
    assert verdict is not None
    assert verdict.outcome is Outcome.PASSED


def test_queries_select_the_version_and_namespace_and_leave_out_probes_and_scrapes():
    queries = Queries.for_target(Target('v"1', "notes-prod"), 300)
    assert 'version="v\\"1"' in queries.requests
    for query in (queries.requests, queries.error_ratio, queries.p99_latency):
        assert 'route!~"/healthz|/readyz|/metrics"' in query
        assert 'namespace="notes-prod"' in query
        assert "[300s]" in query
    assert 'status=~"5.."' in queries.error_ratio
    assert queries.p99_latency.startswith("histogram_quantile(0.99, sum by (le)")
    assert "namespace" not in Queries.for_target(Target("v1"), 60).requests


def test_queries_look_back_only_as_far_as_the_watch_has_run():
    metrics, clock = FakeMetrics(), FakeClock()
    run(metrics, clock)
    ranges = [query.rsplit("[", 1)[1].split("]")[0] for query in metrics.queries if query.startswith("sum(inc")]
    assert ranges == ["1s", "15s", "30s", "45s", "60s"]


def test_settings_come_from_stack_config_and_are_validated():
    raw = {"prometheusUrl": "http://prom:9090", "windowSeconds": 120, "minRequests": 10}
    settings = settings_from_config({"shipsafe:verification": json.dumps(raw)})
    assert (settings.window_seconds, settings.min_requests, settings.max_error_ratio) == (120, 10, 0.01)
    with pytest.raises(ShipsafeError, match="windowSeconds") as error:
        settings_from_config({"shipsafe:verification": json.dumps(raw | {"windowSeconds": 1})})
    assert error.value.exit_code is ExitCode.FAILED
    with pytest.raises(ShipsafeError, match="is not set"):
        settings_from_config({})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"resultType": "vector", "result": []}, None),
        ({"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.25"]}]}, 0.25),
        ({"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}, None),
        ({"resultType": "scalar", "result": [1, "3"]}, 3.0),
    ],
)
def test_prometheus_values(data, expected):
    assert _single_value(data) == expected
