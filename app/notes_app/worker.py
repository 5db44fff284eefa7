"""The background worker: backfills word_count for notes written by the previous release."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from .metrics import AppMetrics
    from .notes import NoteStore

log = logging.getLogger(__name__)


async def run_backfill_loop(store: NoteStore, metrics: AppMetrics, interval_seconds: float) -> None:
    """Runs until cancelled at shutdown; a failed round is logged and retried on the next tick."""
    while True:
        try:
            while filled := await store.backfill_word_counts():
                metrics.backfilled.inc(filled)
                log.info("backfilled word_count", extra={"notes": filled})
        except (psycopg.Error, OSError) as error:
            log.warning("backfill round failed", extra={"error": type(error).__name__})
        await asyncio.sleep(interval_seconds)
