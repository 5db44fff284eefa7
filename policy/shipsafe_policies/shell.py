"""A Dockerfile instruction's commands as the shell runs them: the one parser every image rule tokenises with.

A shell-form RUN, CMD or ENTRYPOINT is a script for `/bin/sh -c` (BuildKit's default shell); an exec-form one is an
argv; a `RUN <<EOF` heredoc is a script too. A wrapper only changes how a command is started, never what it does,
so it is looked through, as hadolint reads the script inside `sh -c` with ShellCheck's parser:
`sh -c "npm install"`, `bash -lc '...'`, `/bin/sh -ec`, `env X=1 npm install`, `exec`, `nohup`, `timeout 60`,
`su app -c`, `gosu app`, and the shell's own words before a command (`if`, `then`, `do`, `{`, `!`, `time`).
Commands are split on `&&`, `||`, `;`, `|`, `&`, newlines and subshell parentheses outside quotes, with the standard
library's POSIX `shlex` (bashlex is not among the pinned requirements, and splitting needs no full grammar). Not
read: commands inside `$(...)` or backticks, and shell functions.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

_PUNCTUATION = ";&|()\n"
_ASSIGNMENT = re.compile(r"^\w+=")
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"})
_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "while", "until", "do", "done", "!", "{", "}", "time", "exec", "command"}
)
"""The shell's words around a command, and builtins that start it in the same process."""
_STARTERS = frozenset({"nohup", "busybox", "builtin"})
"""Commands whose arguments are the command they run (`busybox sh -c ...` runs the applet)."""
_NESTING = 4
"""How many wrappers deep a script is read (`sh -c "bash -c '...'"`); deeper ones stay as written."""
_SHELL_VALUE_OPTIONS = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
_ENV_VALUE_OPTIONS = frozenset({"-u", "--unset", "-C", "--chdir"})
_PRIVILEGE = {
    "sudo": frozenset({"-u", "--user", "-g", "--group", "-C", "-D", "-h", "-p", "-U", "-r", "-t"}),
    "doas": frozenset({"-u", "-C"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p"}),
}
"""Commands that run the rest of their arguments as another user or priority, with their options taking a value."""
_TIMEOUT_VALUE_OPTIONS = frozenset({"-s", "--signal", "-k", "--kill-after"})
_FD_REDIRECTION = re.compile(r"\d*(>&|<&)(\d+|-)|&>>?")
"""`2>&1`, `<&-`, `&>file`: redirections whose `&` is no command separator."""


def _tokens(script: str) -> list[str]:
    script = _FD_REDIRECTION.sub(lambda m: ">" if m.group(0).startswith("&") else " ", script)
    lexer = shlex.shlex(script.replace("\\\n", " "), posix=True, punctuation_chars=_PUNCTUATION)
    lexer.whitespace = " \t\r"  # a newline ends a command, as `;` does
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: `docker build` fails on them in the shell anyway
        return script.split()


def simple_commands(script: str, depth: int = 0) -> list[list[str]]:
    """A shell script as its simple commands, wrappers looked through, each without its leading VAR=value."""
    commands: list[list[str]] = [[]]
    for token in _tokens(script):
        if token and all(char in _PUNCTUATION for char in token):
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for words in commands for command in unwrap(words, depth)]


def unwrap(words: list[str], depth: int = 0) -> list[list[str]]:
    """The simple commands one argv runs: itself, or what its wrapper (`sh -c`, `env`, `exec`...) starts."""
    while words:
        name = words[0].rsplit("/", 1)[-1]
        if name in ("for", "case", "select"):
            return []  # a loop's or a case's header is no command; its body is split on `;` and read
        if name in _KEYWORDS or name in _STARTERS or _ASSIGNMENT.match(words[0]):
            words = words[1:]
        elif name == "env":
            words = _after_env(words[1:])
        elif name == "timeout":
            words = _after_options(words[1:], _TIMEOUT_VALUE_OPTIONS)[1:]  # the duration
        elif name in ("gosu", "su-exec"):
            words = words[2:]  # the user
        elif name in _PRIVILEGE:
            words = _after_options(words[1:], _PRIVILEGE[name])
        elif name in _SHELLS or name in ("su", "runuser"):
            script = _script(words[1:])
            if script is None or depth >= _NESTING:
                break
            return simple_commands(script, depth + 1)
        else:
            break
    return [words] if words else []


def _after_options(words: list[str], takes_value: frozenset[str] = frozenset()) -> list[str]:
    rest = list(words)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        option = rest.pop(0)
        if option == "--":
            break
        if option in takes_value and rest:
            rest.pop(0)
    return rest


def _after_env(words: list[str]) -> list[str]:
    """What `env [options] [NAME=value...] command` runs; `env -S "cmd args"` splits its string (GNU coreutils)."""
    for index, word in enumerate(words):
        if word in ("-S", "--split-string") and index + 1 < len(words):
            return [*_tokens(words[index + 1]), *words[index + 2 :]]
        if word.startswith(("-S", "--split-string=")) and word not in ("-S", "--split-string"):
            return [*_tokens(word.removeprefix("--split-string=").removeprefix("-S")), *words[index + 1 :]]
    return _after_options(words, _ENV_VALUE_OPTIONS)


def _script(arguments: list[str]) -> str | None:
    """The command string of `sh -c`, `bash -lc`, `sh -e -c`, `su app -c`; None when the shell runs a file."""
    takes_script = False
    rest = iter(arguments)
    for word in rest:
        if word in ("-c", "--command") or (re.match(r"^-[a-zA-Z]+$", word) and "c" in word[1:]):
            takes_script = True
        elif word in _SHELL_VALUE_OPTIONS:
            next(rest, None)
        elif word.startswith(("-", "+")) and word not in ("-", "+"):
            continue
        elif takes_script:
            return word
    return None


_LAUNCHERS = frozenset({"-m", "npx", "exec", "corepack"})
"""Words after which the next one is the command run (`python -m pip`, `npx tsc`, `corepack pnpm`)."""


def arguments_of(words: list[str], tool: str) -> list[str] | None:
    """What follows `tool` (also `/path/tool`, `python -m tool`) when the simple command runs it; None when it does
    not (`apk add npm` installs npm, it does not run it)."""
    names = [w.rsplit("/", 1)[-1] for w in words]
    for index, name in enumerate(names):
        if name == tool and (index == 0 or names[index - 1] in _LAUNCHERS):
            return words[index + 1 :]
    return None


def invokes(words: list[str], tool: str, *subcommands: str) -> bool:
    """`words` run `tool` with one of `subcommands` as its first argument (any when none are given)."""
    arguments = arguments_of(words, tool)
    if arguments is None:
        return False
    positional = [w for w in arguments if not w.startswith("-")]
    return not subcommands or (bool(positional) and positional[0] in subcommands)


def instruction_commands(command: Any) -> list[list[str]]:
    """The simple commands a RUN, CMD or ENTRYPOINT runs: its exec-form argv (unwrapped) or its shell script, with a
    `RUN <<EOF` heredoc read as the script it is (a heredoc fed to another program is that program's input)."""
    if command.json:
        return unwrap([str(word) for word in command.value])
    commands = simple_commands(" ".join(command.value))
    heredocs = getattr(command, "heredocs", ())
    # BuildKit runs `RUN <<EOF` (nothing but heredocs) as a script of the default shell, like `RUN sh <<EOF`.
    first = commands[0] if commands else []
    if heredocs and (all(w.startswith("<<") for w in first) or first[0].rsplit("/", 1)[-1] in _SHELLS):
        scripts = [h.content for h in heredocs if _shell_script(h.content)]
        commands = commands[1:] + [c for script in scripts for c in simple_commands(script)]
    return commands


def _shell_script(content: str) -> bool:
    """A heredoc BuildKit runs with the shell: no shebang, or one naming a shell (`#!/usr/bin/env python3` runs
    Python: the Dockerfile reference, "Here-Documents", runs a shebang heredoc with its interpreter)."""
    if not content.startswith("#!"):
        return True
    interpreter = content[2:].split("\n", 1)[0].split()
    names = [word.rsplit("/", 1)[-1] for word in interpreter]
    return bool(names) and (names[0] in _SHELLS or (names[0] == "env" and len(names) > 1 and names[1] in _SHELLS))


def script_text(command: Any) -> str:
    """The instruction's text with its heredoc scripts, for the rules that match shell text."""
    return " ".join([*command.value, *(heredoc.content for heredoc in getattr(command, "heredocs", ()))])
