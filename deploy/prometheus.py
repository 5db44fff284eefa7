"""A minimal Prometheus instant-query client (HTTP API `/api/v1/query`)."""

from __future__ import annotations

import math
from typing import Protocol

import httpx

from deploy.errors import ExitCode, ShipsafeError


class MetricsSource(Protocol):
    def scalar(self, promql: str) -> float | None:
        """Evaluates a query that yields one number; None when there is no data (or NaN, e.g. 0/0)."""
        ...


class PrometheusClient:
    def __init__(self, base_url: str, *, timeout_seconds: float = 10.0) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_seconds)

    def scalar(self, promql: str) -> float | None:
        try:
            response = self._client.get("/api/v1/query", params={"query": promql})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise ShipsafeError(
                f"Prometheus at {self._client.base_url} did not answer {promql!r}: {error}",
                ExitCode.PROMETHEUS_UNAVAILABLE,
            ) from error
        if body.get("status") != "success":
            raise ShipsafeError(f"Prometheus rejected {promql!r}: {body.get('error')}", ExitCode.FAILED)
        return _single_value(body["data"])

    def close(self) -> None:
        self._client.close()


def _single_value(data: dict) -> float | None:
    result = data["result"]
    if data["resultType"] == "scalar":
        raw = result[1]
    elif not result:
        return None
    else:
        raw = result[0]["value"][1]
    value = float(raw)
    return None if math.isnan(value) else value
