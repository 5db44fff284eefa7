"""A Dockerfile as the image rules read it: its stages with build args applied, its instructions, its languages.

Parsing uses the `dockerfile` package (BuildKit's own Go parser), so continuation lines, heredocs and exec
form are understood exactly as `docker build` understands them. Paths in the image resource are relative to
the Pulumi project directory, which is `projectDir` relative to this pack (the pack lives in `<project>/policy`).
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile

from .framework import Config, HasProps
from .images import parse_image
from .k8s import dig
from .languages import Language, identify
from .shell import instruction_commands, script_text
from .toolchains import Toolchain, toolchain_of


def pack_dir() -> Path:
    """The pack directory (the one holding PulumiPolicy.yaml), which `projectDir` is relative to: the pack process's
    working directory. pulumi/pulumi `sdk/go/common/resource/plugin/analyzer_plugin.go` `NewPolicyAnalyzer` starts a
    Python pack with `pwd := policyPackPath` and the program `.`; the offline harness does the same
    (`harness/analyzer.py` `PolicyPackProcess`). Not this module's location: installed from the wheel, these rules
    live in site-packages, away from the app repository's `policy/` directory."""
    return Path.cwd()


_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::?[-+]([^}]*))?\}|(\w+))")


@dataclass(frozen=True)
class Stage:
    base: str
    """FROM argument with build args substituted."""
    alias: str | None
    commands: tuple[Any, ...]
    parent: Stage | None
    """The earlier stage this one is built FROM, if any."""

    def chain(self) -> Iterator[Stage]:
        stage: Stage | None = self
        while stage is not None:
            yield stage
            stage = stage.parent

    def last(self, instruction: str) -> Any | None:
        """The effective instruction (USER, CMD, HEALTHCHECK...) including what the parent stage set."""
        for stage in self.chain():
            found = [c for c in stage.commands if c.cmd == instruction]
            if found:
                return found[-1]
        return None


@dataclass(frozen=True)
class Build:
    path: Path
    context: Path
    stages: tuple[Stage, ...]
    final: Stage
    global_args: tuple[Any, ...]
    target_known: bool = True
    """False for a build read from its outputs, which carry no target or build args: `final` is then the last
    stage, though the build may have stopped at another."""


class DockerfileError(Exception):
    pass


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        return values.get(name, match.group(2) or "")

    return _VARIABLE.sub(replace, text)


@functools.lru_cache(maxsize=16)
def _parse(path: Path, mtime: float) -> tuple[Any, ...]:
    return tuple(dockerfile.parse_file(str(path)))


def load_build(res: HasProps, config: Config) -> Build:
    """The build an image resource describes: Dockerfile stages with build args applied, and the target."""
    props = res.props
    project = (pack_dir() / str(config["projectDir"])).resolve()
    target_known = True
    if res.resource_type == "docker-build:index:Image":
        context_dir = dig(props, "context", "location") or "."
        file_name = dig(props, "dockerfile", "location")
        build_args, target = dig(props, "buildArgs") or {}, dig(props, "target")
    elif "build" in props or "context" not in props:
        # The inputs (Analyze: the provider's Check output), and a preview's outputs where pulumi-docker cannot
        # build (provider.go `Create`/`Update` without `canPreview` return the request's properties).
        context_dir = dig(props, "build", "context") or "."
        file_name = dig(props, "build", "dockerfile")
        build_args, target = dig(props, "build", "args") or {}, dig(props, "build", "target")
    else:
        # The outputs of a build (pulumi-docker `image.go` `dockerBuild`): `context` as given and `dockerfile`
        # relative to it (docker's `GetContextFromLocalDir`); no build args or target, so the Dockerfile is read
        # as `docker build` without them reads it (the preview, which gates `up`, saw them).
        context_dir = props.get("context") or "."
        file_name = str(Path(str(context_dir)) / str(props.get("dockerfile") or "Dockerfile"))
        build_args, target, target_known = {}, None, False
    context = project / str(context_dir)
    path = project / str(file_name) if file_name else context / "Dockerfile"
    try:
        commands = _parse(path, path.stat().st_mtime)
    except (OSError, dockerfile.GoParseError) as error:
        raise DockerfileError(f"cannot read the Dockerfile {path}: {error}") from error
    values: dict[str, str] = {}
    global_args: list[Any] = []
    stages: list[Stage] = []
    current: tuple[str, str | None, Stage | None] | None = None
    body: list[Any] = []
    for command in commands:
        if command.cmd == "FROM":
            if current is not None:
                stages.append(Stage(current[0], current[1], tuple(body), current[2]))
            words = list(command.value)
            base = _substitute(words[0], values)
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            parent = next((s for s in stages if s.alias == base), None)
            current, body = (base, alias, parent), []
        elif current is None:
            if command.cmd == "ARG":
                global_args.append(command)
                name, _, default = command.value[0].partition("=")
                values[name] = str(build_args.get(name, default))
        else:
            body.append(command)
    if current is None:
        raise DockerfileError(f"{path} has no FROM instruction")
    stages.append(Stage(current[0], current[1], tuple(body), current[2]))
    final = next((s for s in stages if s.alias == target), stages[-1]) if target else stages[-1]
    return Build(path, context, tuple(stages), final, tuple(global_args), target_known)


def with_build(check: Any) -> Any:
    """Report an unreadable Dockerfile as the violation instead of crashing the policy."""

    @functools.wraps(check)
    def run(res: HasProps, config: Config) -> Iterator[str]:
        try:
            build = load_build(res, config)
        except DockerfileError as error:
            yield str(error)
            return
        yield from check(build, config)

    return run


def run_text(command: Any) -> str:
    """A RUN's (CMD's...) text with its heredoc scripts, for the rules that match shell text."""
    return script_text(command)


def build_steps(build: Build) -> list[tuple[Any, list[str]]]:
    """Every simple command of every RUN, with the RUN it is part of."""
    return [
        (command, words)
        for stage in build.stages
        for command in stage.commands
        if command.cmd == "RUN"
        for words in instruction_commands(command)
    ]


def build_languages(build: Build) -> list[Language]:
    """The build's languages, the one its final stage runs first (its fixes are the ones a finding names)."""
    starts = [
        w for s in build.stages for c in s.commands if c.cmd in ("CMD", "ENTRYPOINT") for w in instruction_commands(c)
    ]
    found = identify(build.context, [s.base for s in build.stages], [*(w for _, w in build_steps(build)), *starts])
    final_bases = {parse_image(s.base).repository.rsplit("/", 1)[-1] for s in build.final.chain()}
    final_commands = [c for c in (build.final.last("CMD"), build.final.last("ENTRYPOINT")) if c is not None]
    starts_final = {w[0].rsplit("/", 1)[-1] for c in final_commands for w in instruction_commands(c)[:1]}
    return sorted(found, key=lambda language: not (language.base_images & final_bases or language.tools & starts_final))


def fix_for(build: Build, field: str, generic: str) -> str:
    """How the build's main language writes `field` (a Language attribute), or the plain-binary way."""
    languages = build_languages(build)
    if not languages:
        return generic
    value = getattr(languages[0], field)
    return str(value(build.context) if callable(value) else value)


def external_bases(build: Build) -> Iterator[Stage]:
    for stage in build.stages:
        if stage.parent is None and stage.base != "scratch":
            yield stage


def copies_from_a_stage(build: Build) -> bool:
    """The final stage (or a stage it is built FROM) copies a result out of another stage of the build, by name or
    index: the build is multi-stage. `COPY --from=<an image>` takes files from an image, not from a builder."""
    chain = list(build.final.chain())
    stages = {
        **{str(i): stage for i, stage in enumerate(build.stages)},
        **{s.alias: s for s in build.stages if s.alias},
    }
    copies = [c for s in chain for c in s.commands if c.cmd == "COPY"]
    sources = [f.removeprefix("--from=") for c in copies for f in c.flags if f.startswith("--from=")]
    return any(source in stages and stages[source] not in chain for source in sources)


def pairs(command: Any) -> list[tuple[str, str]]:
    """An ENV's or ARG's (name, value) pairs."""
    if command.cmd == "ENV":
        return list(zip(command.value[::2], command.value[1::2], strict=False))
    return [(v.partition("=")[0], v.partition("=")[2]) for v in command.value]


def env_and_args(build: Build) -> Iterator[Any]:
    """Every ENV and ARG, global ones first."""
    for command in (*build.global_args, *(c for s in build.stages for c in s.commands)):
        if command.cmd in ("ENV", "ARG"):
            yield command


def external_toolchains(build: Build, languages: list[Language]) -> Iterator[Stage]:
    """The final stage's external base, when it is a language's compiler image (golang)."""
    toolchains = {image for language in languages for image in language.toolchain_images}
    for stage in build.final.chain():
        if stage.parent is None and parse_image(stage.base).repository.rsplit("/", 1)[-1] in toolchains:
            yield stage


def final_compiles(build: Build) -> Iterator[tuple[Any, list[str], Toolchain]]:
    """The compile steps the final stage (with the stages it is built FROM) runs, with the toolchain each uses."""
    for stage in reversed(list(build.final.chain())):
        for command in stage.commands:
            for words in instruction_commands(command) if command.cmd == "RUN" else ():
                if toolchain := toolchain_of(words):
                    yield command, words, toolchain


def copy_destination(build: Build, stage: Stage, index: int, source: str) -> str:
    """Where the COPY/ADD at `stage.commands[index]` puts `source`: into its destination directory (a trailing `/`,
    `.`, or several sources), relative to the WORKDIR in effect there (BuildKit's default is `/`)."""
    command = stage.commands[index]
    destination = str(command.value[-1])
    workdir = "/"
    earlier = [c for s in reversed(list(stage.parent.chain())) for c in s.commands] if stage.parent else []
    for previous in [*earlier, *stage.commands[:index]]:
        if previous.cmd == "WORKDIR" and previous.value:
            workdir = str(Path(workdir) / str(previous.value[0]))
    into = destination.endswith("/") or destination in (".", "./") or len(command.value) > 2
    target = Path(workdir) / destination / (source.rstrip("/").rsplit("/", 1)[-1] if into else "")
    return str(target).rstrip("/") if str(target) != "/" else "/"


def exec_form(instruction: str, text: str) -> str:
    """A shell-form instruction in exec form, when it is one plain command (no shell syntax to keep)."""
    if re.search(r"[$&|;<>`*?()]", text):
        return ""
    try:
        return f"{instruction} {json.dumps(shlex.split(text))}"
    except ValueError:
        return ""


def dockerignore_misses(context: Path, wanted: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Which of `wanted` ({shown name: the patterns that exclude it}) the context's .dockerignore fails to exclude."""
    path = context / ".dockerignore"
    if not path.is_file():
        return list(wanted)
    patterns = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if patterns and patterns[0] in ("*", "**"):
        return []  # allow-list style: everything is excluded unless re-included
    given = {p.strip("/").removeprefix("**/") for p in patterns}
    return [name for name, excluding in wanted.items() if not given & set(excluding)]


def copies_the_context(build: Build) -> bool:
    """A COPY or ADD takes the whole build context (`COPY . .`), so whatever .dockerignore lets through."""
    copies = [c for s in build.stages for c in s.commands if c.cmd in ("COPY", "ADD")]
    local = [c for c in copies if not any(f.startswith("--from=") for f in c.flags)]
    return any(source in (".", "./", "*", "./*") for c in local for source in c.value[:-1])


_VALUE_OPTIONS = frozenset(
    {
        *("-u", "--uid", "-g", "--gid", "-G", "--groups", "--ingroup", "-d", "-h", "--home", "--home-dir"),
        *("-s", "--shell", "-c", "--comment", "--gecos", "-k", "--skel", "-K", "--key", "-e", "-f", "-p", "-b"),
    }
)
"""useradd/adduser/groupadd/addgroup options that take a value (shadow-utils, Debian adduser, BusyBox)."""


def _options(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """A user or group command's options (`--uid=1` and `--uid 1` alike) and its positional words."""
    options: dict[str, str] = {}
    positional: list[str] = []
    rest = iter(words[1:])
    for word in rest:
        name, equals, value = word.partition("=")
        if word.startswith("-") and equals:
            options[name] = value
        elif word in _VALUE_OPTIONS:
            options[word] = next(rest, "")
        elif not word.startswith("-"):
            positional.append(word)
    return options, positional


@dataclass(frozen=True)
class CreatedIds:
    """The numeric IDs of the users and groups a Dockerfile's final stage (with the stages it is built on) creates."""

    uids: Mapping[str, str]
    """user -> UID (`useradd -u`, `adduser --uid`)."""
    primary_gids: Mapping[str, str]
    """user -> the GID of its primary group, where the Dockerfile states it."""
    gids: Mapping[str, str]
    """group -> GID (`groupadd -g`, `addgroup --gid`)."""


def created_ids(build: Build) -> CreatedIds:
    runs = [c for stage in reversed(list(build.final.chain())) for c in stage.commands if c.cmd == "RUN"]
    uids: dict[str, str] = {}
    gids: dict[str, str] = {}
    primary: dict[str, str] = {}
    for words in (w for c in runs for w in instruction_commands(c)):
        tool = words[0].rsplit("/", 1)[-1]
        options, positional = _options(words)
        if not positional:
            continue
        name = positional[0]
        if tool in ("groupadd", "addgroup") and (gid := options.get("-g") or options.get("--gid")):
            gids[name] = gid
        elif tool in ("useradd", "adduser"):
            if uid := options.get("-u") or options.get("--uid"):
                uids[name] = uid
            # The primary group (useradd -g; Debian adduser --gid/--ingroup; BusyBox adduser -G); without one, the
            # user's own group, whose GID only a groupadd in the Dockerfile states.
            if tool == "useradd":
                group = options.get("-g") or options.get("--gid")
            else:
                group = options.get("-G") or options.get("--gid") or options.get("--ingroup")
            primary[name] = group or name
    resolved = {user: gids.get(group, group) for user, group in primary.items()}
    return CreatedIds(uids, {user: gid for user, gid in resolved.items() if gid.isdigit()}, gids)


def numeric_user(build: Build, value: str) -> str:
    """A USER value with the names the Dockerfile creates replaced by their IDs (`app` -> `10001:10001`); names it
    does not create (the base image's `node`, `nonroot`) stay names."""
    created = created_ids(build)
    name, colon, group = value.partition(":")
    uid = created.uids.get(name, name)
    if colon:
        return f"{uid}:{created.gids.get(group, group)}"
    gid = created.primary_gids.get(name)
    return f"{uid}:{gid}" if gid and uid.isdigit() else uid
