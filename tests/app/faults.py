"""Test-only fault injection for app processes started by the tests (the image has its own target, `faulty`).

`app/fault_injection` on PYTHONPATH makes `python -m notes_app` run with the faults switched on (its
`sitecustomize.py`). Usage: `start_app(faulty(app_env(...), latency_ms=4000))`.
"""

from __future__ import annotations

import os

from tests.support.services import APP_DIR

FAULT_INJECTION_DIR = APP_DIR / "fault_injection"


def faulty(env: dict[str, str], *, error_rate: float = 0, latency_ms: int = 0) -> dict[str, str]:
    """`env` for an app process that fails `error_rate` of `/notes` requests and delays each by `latency_ms`."""
    return env | {
        "PYTHONPATH": os.pathsep.join((str(FAULT_INJECTION_DIR), str(APP_DIR))),
        "FAULT_ERROR_RATE": str(error_rate),
        "FAULT_LATENCY_MS": str(latency_ms),
    }
