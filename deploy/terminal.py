"""What reaches the terminal: text from outside (Prometheus answers, update messages, git authors) never carries a
control sequence.

A terminal acts on ESC (CSI, OSC, DCS ...), on the 8-bit C1 controls (0x9b is CSI on its own), on a carriage return
or a backspace that overwrite what was printed, and shows bidirectional overrides reordered (the "Trojan Source"
trick). Each is printed as a visible escape (`\\x1b`, `\\u202e`) instead. A CI log has one more reader: a line that
starts with `::` or `##[` (after blanks) is a GitHub Actions workflow command (`::error::`, `::add-mask::`,
`::stop-commands::`), so such a line's first character is printed as its escape (`\\x3a`).

Rich strips only a few C0 codes (`rich/control.py` `STRIP_CONTROL_CODES`: BEL, BS, VT, FF, CR) and passes ESC and
C1 through, so every string a `TerminalConsole` renders goes through `printable` first. Its own styles are added
after that, as segments.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 controls except tab and newline (the text's own layout), DEL, C1, and the bidirectional marks and overrides.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# actions/runner `ActionCommand.TryParseV2` (and `TryParse`): the line, its leading white space trimmed (C#
# `TrimStart()`: any Unicode white space), starts with "::" (or "##[").
_WORKFLOW_COMMAND = re.compile(r"^([^\S\n]*)(?=::|##\[)(.)", re.MULTILINE)


def _inert_command(match: re.Match[str]) -> str:
    return f"{match.group(1)}\\x{ord(match.group(2)):02x}"


def printable(text: str) -> str:
    """`text` with every control character shown as its escape, inert on any terminal and in a CI log."""
    return _WORKFLOW_COMMAND.sub(_inert_command, _CONTROLS.sub(_visible, text))


class TerminalConsole(Console):
    """A rich Console that renders every string it prints through `printable` (tables' cells included)."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(printable(text), **options)
