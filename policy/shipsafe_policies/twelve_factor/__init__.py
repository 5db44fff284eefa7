"""Twelve-factor family: every factor that shows on the resource graph, one module per factor."""

from __future__ import annotations

from ..framework import Family
from . import admin, backing, build, concurrency, config, disposability, logs, parity, port, processes

FAMILY = Family(
    "twelve-factor",
    "Twelve-factor",
    (
        build.SECTION,
        config.SECTION,
        backing.SECTION,
        processes.SECTION,
        port.SECTION,
        concurrency.SECTION,
        disposability.SECTION,
        parity.SECTION,
        logs.SECTION,
        admin.SECTION,
    ),
)
