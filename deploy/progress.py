"""What a long step waits for and how long is left: a live bar on a terminal, plain lines everywhere else.

Rich's Console makes both decisions: `is_terminal` is false when output is piped or captured (CI logs) and a
live display is then not drawn (`rich/live.py` `Live.start` only refreshes on a terminal that is not dumb);
`NO_COLOR` is read by the Console itself (`rich/console.py` `Console.__init__`), so no colour is written, whatever
markup a line carries. In plain mode a line says how long is left at most every `PLAIN_NOTICE_SECONDS`, driven
by the step's own output, so a CI log shows progress without a timer thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.progress_bar import ProgressBar
from rich.text import Text

from components.timeline import DeployTimeline

PLAIN_NOTICE_SECONDS = 30.0


def duration(seconds: float) -> str:
    """`45s`, `7m05s`, `1h02m`: short enough for a progress line."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass(frozen=True)
class Wait:
    description: str
    """The step, e.g. `pulumi up staging (rollback)`."""
    waits_for: str
    """What it waits for, in the order it happens, with each part's worst case."""
    limit_seconds: float | None
    """When the step ends at the latest (it fails then); None when nothing bounds it."""


class WaitDisplay:
    """Handed to the step: `tick()` on each sign of life (an engine line, a measurement), `left()` for messages."""

    def __init__(self, wait: Wait, console: Console, clock: Callable[[], float]) -> None:
        self._wait = wait
        self._console = console
        self._clock = clock
        self._started = clock()
        self._last_notice = self._started

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def left(self) -> str:
        if self._wait.limit_seconds is None:
            return "no limit"
        return f"at most {duration(self._wait.limit_seconds - self.elapsed)} left"

    def tick(self) -> None:
        if self._console.is_terminal or self._clock() - self._last_notice < PLAIN_NOTICE_SECONDS:
            return
        self._last_notice = self._clock()
        self._console.print(
            f"  … {escape(self._wait.description)}: {duration(self.elapsed)} elapsed, {self.left()}", highlight=False
        )


class _LeftColumn(ProgressColumn):
    def __init__(self, display: WaitDisplay) -> None:
        super().__init__()
        self._display = display

    def render(self, task: Task) -> Text:
        return Text(self._display.left(), style="progress.remaining")


class _ElapsedBar(BarColumn):
    """The share of the limit used so far (the step reports no completed amount of its own)."""

    def render(self, task: Task) -> ProgressBar:
        used = min(task.elapsed or 0.0, task.total) if task.total else None
        return ProgressBar(total=task.total, completed=used or 0.0, width=self.bar_width, pulse=used is None)


# The `deployTimeline` stages (components/timeline.py `DeployTimeline.stages`), as a waiting line names them.
STAGE_NAMES = {
    "backingServices": "backing services",
    "migration": "migration Job",
    "rollout": "rolling updates",
    "ingress": "Ingress address",
}


@dataclass(frozen=True)
class UpTimeline:
    """The worst case of one `pulumi up`: each stage's seconds and when the provider's awaits give up at the latest."""

    stages: dict[str, int]
    longest_up_seconds: int

    @classmethod
    def of(cls, timeline: DeployTimeline) -> UpTimeline:
        return cls(dict(timeline.stages), timeline.longest_up_seconds)

    @classmethod
    def from_output(cls, output: object) -> UpTimeline | None:
        """From the `deployTimeline` stack output (`DeployTimeline.as_output`); None when absent or malformed."""
        if not isinstance(output, dict):
            return None
        stages, longest = output.get("stages"), output.get("longestUpSeconds")
        if not isinstance(stages, dict) or not isinstance(longest, int | float):
            return None
        return cls({str(k): int(v) for k, v in stages.items() if isinstance(v, int | float)}, int(longest))


def up_wait(description: str, timeline: UpTimeline | None) -> Wait:
    """What `pulumi up` waits for: the stages in the order they run, each with its worst case; the limit is the
    provider's await timeouts (an await that times out fails the update, `components/timeline.py`)."""
    if timeline is None:
        return Wait(description, "the engine (no deploy timeline known)", None)
    stages = [f"{STAGE_NAMES.get(name, name)} ≤ {duration(s)}" for name, s in timeline.stages.items() if s > 0]
    return Wait(description, ", then ".join(stages) or "no awaited resources", timeline.longest_up_seconds)


@contextmanager
def waiting(console: Console, clock: Callable[[], float], wait: Wait) -> Iterator[WaitDisplay]:
    """Says what the step waits for, shows it live (terminal) or in notices (plain), then a check mark."""
    limit = f"; {duration(wait.limit_seconds)} at most" if wait.limit_seconds is not None else ""
    console.print(f"{escape(wait.description)}: waiting for {escape(wait.waits_for)}{limit}", highlight=False)
    display = WaitDisplay(wait, console, clock)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        _ElapsedBar(),
        TimeElapsedColumn(),
        _LeftColumn(display),
    )
    with Progress(*columns, console=console, transient=True, get_time=clock) as progress:
        progress.add_task(escape(wait.description), total=wait.limit_seconds)
        yield display
    console.print(f"[green]✓[/green] {escape(wait.description)} ({duration(display.elapsed)})", highlight=False)
