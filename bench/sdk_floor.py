"""The SDK alone running the program, with a monitor that only answers: the floor under the offline preview's runs.

`python -m bench.sdk_floor STACK` is that floor as a fresh process (imports, the first run that finds the unset
secrets, and the program's three runs), which `bench/preview_bench.py` sets beside the import baseline and
staging's whole preview: the part of goal 1's headroom the SDK and the program's own imports take before any
analysis or reporting of ours runs. It runs through the harness's runtime (`harness.runtime.run_stack`), and the
registrations of other providers than Kubernetes (13 of staging's 46) keep their modelled state, which the program
reads: slightly above the SDK alone.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any
from unittest import mock

from pulumi.runtime.proto import resource_pb2

from harness import runtime


class AnsweringMonitor(runtime.RecordingMonitor):
    """Answers a Kubernetes registration with its own inputs and records nothing: what is left of a run is the SDK
    running the program (other providers keep their modelled state, which the program reads)."""

    def RegisterResource(self, request: Any) -> Any:
        if not request.type.startswith("kubernetes:"):
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=f"{request.name}-id", object=request.object)


def three_runs(stack: str, config: Mapping[str, Any] | None, unset: Sequence[str]) -> Sequence[str]:
    """The program's runs for the three phases (a preview, an `up`, a preview) as `model_phases` runs them, unset
    secrets filled up front once found; returns the secrets found unset."""
    with mock.patch.object(runtime, "RecordingMonitor", AnsweringMonitor):
        for preview in (True, False, True):
            recording = runtime.run_stack(stack, config_overrides=config, preview=preview, missing_secrets=unset)
            unset = recording.placeholder_secrets
    return unset


class SdkFloor:
    """The three runs in this warm process; `run()` times one set of them."""

    def __init__(self, config: Mapping[str, Any] | None) -> None:
        self.config = config
        # Warm-up: imports are the baseline's; a first run's one-off costs count in neither (a floor kept low).
        self.unset = three_runs("staging", config, ())

    def run(self) -> float:
        # As in `shipsafe preview --offline` (`deploy.offline.commands`): no cyclic collections over this larger heap.
        gc.collect()
        gc.disable()
        started = time.perf_counter()
        try:
            three_runs("staging", self.config, self.unset)
            return time.perf_counter() - started
        finally:
            gc.enable()


if __name__ == "__main__":
    gc.disable()  # as the preview runs
    three_runs(sys.argv[1], None, ())
