"""Drives the policy pack over gRPC exactly as the Pulumi engine does, against a recorded stack.

The engine (pulumi/pulumi `sdk/go/common/resource/plugin/analyzer_plugin.go`, `NewPolicyAnalyzer`) boots a
Python pack through the `pulumi-analyzer-policy-python` shim: `<virtualenv>/bin/python -u -m pulumi.policy
<engine> .` with the virtualenv of `PulumiPolicy.yaml` (relative to the pack), the pack directory as working
directory and PULUMI_PROJECT/STACK/DRY_RUN/ORGANIZATION in the environment; the pack prints its gRPC port on
the first stdout line. The engine then calls Handshake (unimplemented by Python packs: tolerated),
ConfigureStack, GetAnalyzerInfo, Configure with the policy config reconciled against each policy's schema
(`pkg/resource/analyzer/config.go`), Analyze with each resource's inputs, and AnalyzeStack with every resource's
outputs, parent and dependencies.

No engine runs offline: the engine address is a placeholder the pack only parses (it logs to stderr).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import selectors
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from harness.local_files import LocalFileError, load_json, read_text
from harness.pack_launch import PLACEHOLDER_ENGINE, PolicyPackError, pack_launch, started_here, take_prelaunched
from harness.provider_check import checked_inputs
from harness.recording import DOCKER_IMAGE, INTERNAL_KEY_PREFIX, RecordedResource, Recording, engine_outputs
from harness.stack_config import REPO_ROOT

POLICY_DIR = REPO_ROOT / "policy"
SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
"""Pulumi's wire marker for a secret value (`SPECIAL_SIG_KEY`: `SPECIAL_SECRET_SIG`)."""
LEVELS = ("advisory", "mandatory", "remediate", "disabled")
_LEVEL_NAMES = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.REMEDIATE: "mandatory",
    analyzer_pb2.DISABLED: "disabled",
}
_LEVEL_VALUES = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_UNKNOWN_AT_PREVIEW = "can't run policy"
_RPC_TIMEOUT = 60.0
REUSE_VARIABLE = "SHIPSAFE_ANALYSIS_REUSE"
"""Environment variable: `on` (default), `off` (every request goes to the pack), `verify` (every request goes to the
pack and a reused answer that differs from the pack's fails the analysis)."""
REUSE_MODES = ("on", "off", "verify")


class ReuseMismatch(PolicyPackError):
    """A reused answer differs from the pack's own: a policy reads something its request key does not hold."""


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    description: str
    level: str
    """The pack's default enforcement level (before stack config)."""
    kind: str
    """`resource` or `stack`."""
    tags: tuple[str, ...]
    remediation: str
    config_schema: Mapping[str, Any]

    def tag(self, prefix: str) -> str:
        return next((t.removeprefix(prefix) for t in self.tags if t.startswith(prefix)), "")


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    message: str
    """What is wrong and what to change (the policy description stripped)."""
    urn: str
    resource: str
    """Display name: the resource's Pulumi name, or `(stack)` for stack-wide findings."""
    fix: str


@dataclass
class AnalysisReport:
    pack: str
    stack: str
    policies: list[PolicyInfo]
    levels: dict[str, str]
    """Effective enforcement level per policy for this stack."""
    violations: list[Violation] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Policies that could not run on some resource because a value is unknown until `pulumi up`."""
    resources: int = 0

    @property
    def mandatory_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "mandatory"]

    @property
    def advisory_violations(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "advisory"]


# Policy config: the engine's reconciliation --------------------------------------------------------------------


ENVIRONMENTS = "environments"
"""The top-level key of a policy config file that names Pulumi ESC environments (not a policy)."""


def load_policy_config(path: Path) -> dict[str, dict[str, Any]]:
    """Parse a `--policy-pack-config` file: {policy: level} or {policy: {enforcementLevel?, ...props}}."""
    try:  # within the bounds of every local file (size, UTF-8, depth)
        document = load_json(path) if read_text(path).strip() else {}
    except LocalFileError as error:
        raise PolicyPackError(str(error)) from None
    if not isinstance(document, dict):
        raise PolicyPackError(f"{path}: must be a JSON object of policy names")
    if ENVIRONMENTS in document:  # not a policy: the real CLI resolves it (config.go:106-122)
        raise PolicyPackError(
            f"{path}: {ENVIRONMENTS}: Pulumi ESC environments are not supported by shipsafe: the offline preview "
            "and shipsafe's checks before the real CLI cannot resolve them, so they would judge another config than "
            "the pack gets; write the settings into this file"
        )
    parsed: dict[str, dict[str, Any]] = {}
    for name, value in document.items():
        if isinstance(value, str):
            value = {"enforcementLevel": value}
        if not isinstance(value, dict):
            raise PolicyPackError(f"{path}: {name!r} must be a level string or an object")
        level = value.get("enforcementLevel")
        if level is not None and level not in LEVELS:
            raise PolicyPackError(f"{path}: {name}: {level!r} is not one of {', '.join(LEVELS)}")
        parsed[name] = dict(value)
    return parsed


def reconcile_config(
    policies: Iterable[PolicyInfo], given: Mapping[str, Mapping[str, Any]], source: str = "policy config"
) -> dict[str, Any]:
    """What the engine sends in Configure (pulumi/pulumi `pkg/resource/analyzer/config.go` `ReconcilePolicyPackConfig`):
    schema defaults, then `all`, then each given entry, the pack's policies validated against their JSON schemas.
    As `applyConfig` (config.go:337-371) does, a name the pack has no policy for, and `all` itself, are sent too,
    with the level and properties given (the pack refuses an unknown name, `shipsafe_policies/floor.py`); one
    with properties but no level stops the CLI (`analyzer_plugin.go:622-624`: invalid enforcement level "")."""
    # Imported here, by the process that configures a pack: about 30 ms of the preview's start-up otherwise, where
    # the packs are driven from a fork (`harness.pack_driver`).
    from jsonschema import Draft7Validator

    infos = {p.name: p for p in policies}
    every = given.get("all", {}).get("enforcementLevel")
    result: dict[str, Any] = {}
    for name, info in infos.items():
        properties = dict(info.config_schema.get("properties") or {})
        settings = {k: v["default"] for k, v in properties.items() if "default" in v}
        own = dict(given.get(name, {}))
        level = own.pop("enforcementLevel", None) or every or info.level
        settings.update(own)
        schema = {"type": "object", "properties": properties}
        if info.config_schema.get("required"):
            schema["required"] = list(info.config_schema["required"])
        errors = sorted(f"{e.json_path}: {e.message}" for e in Draft7Validator(schema).iter_errors(settings))
        if errors:
            raise PolicyPackError(f"invalid config for {name}: {'; '.join(errors)}")
        result[name] = {"enforcementLevel": level, **settings}
    for name in sorted(set(given) - set(infos)):
        own = dict(given[name])
        if not own:
            continue  # the engine drops an entry with neither level nor properties (config.go:147-150)
        level = own.pop("enforcementLevel", None)
        if level is None:
            raise PolicyPackError(f'{source}: {name}: invalid enforcement level ""')
        result[name] = {"enforcementLevel": level, **own}
    return result


def policy_infos(info: analyzer_pb2.AnalyzerInfo) -> list[PolicyInfo]:
    """The pack's policies as its GetAnalyzerInfo answer describes them, in the pack's own order."""
    kinds = {analyzer_pb2.POLICY_TYPE_RESOURCE: "resource", analyzer_pb2.POLICY_TYPE_STACK: "stack"}
    return [
        PolicyInfo(
            name=p.name,
            description=p.description,
            level=_LEVEL_NAMES[p.enforcementLevel],
            kind=kinds.get(p.policy_type, "unknown"),
            tags=tuple(p.tags),
            remediation=p.remediation_steps,
            config_schema=json_format.MessageToDict(p.configSchema),
        )
        for p in info.policies
    ]


def configure_request(
    policies: Iterable[PolicyInfo], config: Mapping[str, Mapping[str, Any]], source: str = "policy config"
) -> tuple[analyzer_pb2.ConfigureAnalyzerRequest, dict[str, str]]:
    """The Configure call the engine makes for a parsed policy config file (`load_policy_config`), and the
    effective enforcement level of each of the pack's policies."""
    policies = list(policies)
    reconciled = reconcile_config(policies, config, source)
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, settings in reconciled.items():
        properties = {k: v for k, v in settings.items() if k != "enforcementLevel"}
        entry = request.policyConfig[name]
        entry.enforcementLevel = _LEVEL_VALUES[settings["enforcementLevel"]]
        entry.properties.update(properties)
    return request, {p.name: reconciled[p.name]["enforcementLevel"] for p in policies}


# Wire format -----------------------------------------------------------------------------------------------------


def _wrap_secret(value: Any, path: str) -> Any:
    """Mark the value at a recorded secret path (`stringData.redis.conf`, `env[0].value`) as a secret."""
    if not path:
        return {**SECRET_SIG, "value": value}
    if isinstance(value, list):
        match = re.match(r"\[(\d+)\]\.?", path)
        if match and int(match.group(1)) < len(value):
            index = int(match.group(1))
            return [_wrap_secret(v, path[match.end() :]) if i == index else v for i, v in enumerate(value)]
        return value
    if isinstance(value, dict):
        for key in sorted(value, key=len, reverse=True):  # keys may contain dots: longest match first
            if path == key or path.startswith(key + ".") or path.startswith(key + "["):
                rest = path[len(key) :].removeprefix(".")
                return {**value, key: _wrap_secret(value[key], rest)}
    return value


def to_struct(properties: Mapping[str, Any], secret_paths: Iterable[str] = ()) -> struct_pb2.Struct:
    """Properties as the engine marshals them (KeepSecrets, KeepUnknowns): numbers become floats."""
    wire: Any = dict(properties)
    for path in sorted(secret_paths):
        wire = _wrap_secret(wire, path)
    struct = struct_pb2.Struct()
    struct.update(wire)
    return struct


def _seconds(duration: str | None) -> float:
    """Pulumi custom timeouts (`10m`, `600s`, `1h30m`) in seconds, as the engine sends them."""
    if not duration:
        return 0.0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration))


def _options(resource: RecordedResource) -> analyzer_pb2.AnalyzerResourceOptions:
    timeouts = resource.custom_timeouts
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=resource.protect,
        ignoreChanges=list(resource.ignore_changes),
        deleteBeforeReplace=resource.delete_before_replace,
        deleteBeforeReplaceDefined=True,
        customTimeouts=analyzer_pb2.AnalyzerResourceOptions.CustomTimeouts(
            create=_seconds(timeouts.get("create")),
            update=_seconds(timeouts.get("update")),
            delete=_seconds(timeouts.get("delete")),
        ),
        parent=resource.parent or "",
    )


def _provider(
    resource: RecordedResource, by_urn: Mapping[str, RecordedResource]
) -> analyzer_pb2.AnalyzerProviderResource | None:
    """The provider reference `<urn>::<id>` as the engine resolves it (properties of an explicit provider)."""
    if not resource.provider:
        return None
    urn = resource.provider.rsplit("::", 1)[0] if resource.provider.count("::") > 3 else resource.provider
    known = by_urn.get(urn)
    kind, name = urn.split("::")[-2:] if urn.count("::") >= 3 else ("pulumi:providers:unknown", urn)
    return analyzer_pb2.AnalyzerProviderResource(
        urn=urn,
        type=kind.rsplit("$", 1)[-1],
        name=name,
        properties=to_struct(known.inputs if known else {}),
    )


def _common_fields(resource: RecordedResource, by_urn: Mapping[str, RecordedResource]) -> dict[str, Any]:
    return {
        "type": resource.type,
        "urn": resource.urn,
        "name": resource.name,
        "options": _options(resource),
        "provider": _provider(resource, by_urn),
    }


def analyze_request(resource: RecordedResource, by_urn: Mapping[str, RecordedResource]) -> analyzer_pb2.AnalyzeRequest:
    # Analyze sees a resource's inputs as the provider's Check returned them, before the step runs.
    checked, secret_paths = checked_inputs(resource)
    return analyzer_pb2.AnalyzeRequest(properties=to_struct(checked, secret_paths), **_common_fields(resource, by_urn))


def stack_resource(resource: RecordedResource, by_urn: Mapping[str, RecordedResource]) -> analyzer_pb2.AnalyzerResource:
    # AnalyzeStack sees outputs plus the graph: parent, dependencies, property dependencies.
    secret_paths = [p for p in resource.output_secret_paths if not p.startswith(INTERNAL_KEY_PREFIX)]
    return analyzer_pb2.AnalyzerResource(
        properties=to_struct(engine_outputs(resource.outputs), secret_paths),
        parent=resource.parent or "",
        dependencies=list(resource.dependencies),
        propertyDependencies={
            key: analyzer_pb2.AnalyzerPropertyDependencies(urns=list(urns))
            for key, urns in resource.property_dependencies.items()
            if urns
        },
        **_common_fields(resource, by_urn),
    )


# Reuse of identical requests -------------------------------------------------------------------------------------

_DOCKER_TYPES = (DOCKER_IMAGE, "docker-build:index:Image")
_DECLARED_FILE_NAMES = ("Dockerfile", ".dockerignore")


def reuse_mode(value: str | None = None) -> str:
    """The reuse mode `value` names, else `SHIPSAFE_ANALYSIS_REUSE`'s, else `on`; anything else is refused."""
    chosen = value if value is not None else os.environ.get(REUSE_VARIABLE, "on")
    if chosen not in REUSE_MODES:
        raise PolicyPackError(f"{REUSE_VARIABLE}={chosen!r}: must be one of {', '.join(REUSE_MODES)}")
    return chosen


def _declared_paths(properties: Mapping[str, Any]) -> set[str]:
    """Files an image resource's properties point the docker rules at (`policy/shipsafe_policies/docker.py`
    `load_build`): its Dockerfile and the build context's `.dockerignore`, in the shapes of inputs (`build.context`,
    `build.dockerfile`), of pulumi-docker outputs (`context`, `dockerfile` relative to it) and of docker-build."""
    build: Mapping[str, Any] = properties["build"] if isinstance(properties.get("build"), Mapping) else {}
    contexts = {str(c) for c in (build.get("context"), properties.get("context"), ".") if isinstance(c, str)}
    location = properties.get("context")
    if isinstance(location, Mapping) and isinstance(location.get("location"), str):
        contexts.add(location["location"])
    files = {str(f) for f in (build.get("dockerfile"), properties.get("dockerfile")) if isinstance(f, str)}
    dockerfile = properties.get("dockerfile")
    if isinstance(dockerfile, Mapping) and isinstance(dockerfile.get("location"), str):
        files.add(dockerfile["location"])
    paths = {posixpath.join(c, name) for c in contexts for name in _DECLARED_FILE_NAMES}
    return paths | files | {posixpath.join(c, f) for c in contexts for f in files}


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        return f"unreadable: {error.strerror}"


class AnalysisReuse:
    """Answers of the pack kept by the exact request: a byte-identical request (type, URN, properties, options,
    provider; for AnalyzeStack every resource with its graph), sent to a pack started for the same project, stack
    and dry-run flag with the same policy config, and with the same content of the files the pack declares it reads
    (the Dockerfile and `.dockerignore` an image resource names), gets the answer the pack gave before.

    The real engine analyzes a preview and the `up` after it anew; pulumi/pulumi#14455 asks it for this reuse. It is
    sound only for a pack whose policies read nothing else (no clock, no undeclared file, no state kept between
    requests): `verify` sends every request anyway and fails on the first reused answer that differs, and the
    tests run the real pack so (`tests/harness/test_analysis_reuse.py`)."""

    def __init__(self, mode: str = "on") -> None:
        self.mode = reuse_mode(mode)
        self._answers: dict[bytes, bytes] = {}
        self._counting = threading.Lock()  # the packs of a preview analyze on their own threads
        self.reused = 0
        self.asked = 0
        self.verified = 0
        """Answers reused; requests the pack answered; of those, answers `verify` found equal to a kept one."""

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def key(self, context: bytes, request: bytes, declared: Iterable[Path]) -> bytes:
        digest = hashlib.sha256(context)
        digest.update(request)
        for path in sorted(set(declared)):
            digest.update(f"\0{path}\0{_file_digest(path)}".encode())
        return digest.digest()

    def answer(self, key: bytes) -> bytes | None:
        """The kept answer (serialised) when reuse is on; None in `verify`, where every request goes to the pack."""
        found = self._answers.get(key) if self.mode == "on" else None
        if found is not None:
            with self._counting:
                self.reused += 1
        return found

    def keep(self, key: bytes, answer: bytes, what: str) -> None:
        kept = self._answers.get(key)
        with self._counting:
            self.asked += 1
        if kept is None:
            self._answers[key] = answer
            return
        parse = analyzer_pb2.AnalyzeResponse.FromString  # only `verify` resends a request it kept the answer to
        if kept == answer or parse(kept) == parse(answer):
            with self._counting:
                self.verified += 1
        else:
            raise ReuseMismatch(
                f"{what}: the pack answered a byte-identical request differently the second time; a policy reads "
                "something outside the request, the policy config, the stack and the declared files (the reuse of "
                f"identical analyses is unsound for this pack: set {REUSE_VARIABLE}=off)"
            )


# The pack process ------------------------------------------------------------------------------------------------

_CHANNELS_MADE = threading.Event()


def talked_grpc() -> bool:
    """Whether this process has opened a gRPC channel (to a pack): a fork of it may then not use gRPC safely (grpcio
    runs without fork support: `grpc._cython.cygrpc.is_fork_support_enabled()` is False)."""
    return _CHANNELS_MADE.is_set()


class PolicyPackProcess:
    """One running pack. `with PolicyPackProcess(...) as pack: pack.configure(...); pack.analyze(recording)`."""

    def __init__(
        self,
        pack_dir: Path = POLICY_DIR,
        *,
        project: str = "shipsafe",
        stack: str = "offline",
        python: Path | None = None,
        startup_timeout: float = 30.0,
        stack_config: Mapping[str, str] | None = None,
        stack_tags: Mapping[str, str] | None = None,
        dry_run: bool = True,
        reuse: AnalysisReuse | None = None,
    ) -> None:
        """`python` overrides the interpreter PulumiPolicy.yaml selects (tests of broken packs use it);
        `stack_config` (`<namespace>:<key>` -> string) and `stack_tags` are what the engine tells the pack about
        the stack (ConfigureStack and `PULUMI_CONFIG`). `dry_run`: the pack of a preview (True) or of an update
        (False), as the engine starts one per deployment. `reuse` keeps answers by request (shared by packs: the key
        holds the dry-run flag and the config)."""
        self.pack_dir, self.project, self.stack, self.dry_run = pack_dir, project, stack, dry_run
        self.stack_config, self.stack_tags = dict(stack_config or {}), dict(stack_tags or {})
        self.reuse = reuse or AnalysisReuse("off")
        self._environment: dict[str, str] = {}
        self._config: dict[str, Any] = {}
        self._python, self._startup_timeout = python, startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the pack; closed in close()
        self._channel: grpc.Channel | None = None
        self._calls: dict[str, grpc.UnaryUnaryMultiCallable] = {}
        self.name = ""
        self.policies: list[PolicyInfo] = []
        self.levels: dict[str, str] = {}

    def __enter__(self) -> PolicyPackProcess:
        try:
            self._start()
        except grpc.RpcError as error:  # Handshake, ConfigureStack, GetAnalyzerInfo: the pack answered with an error
            stderr = self.stderr()
            self.close()
            raise PolicyPackError(f"the policy pack failed to start: {error.details()}\n{stderr}") from error
        except grpc.FutureTimeoutError as error:
            stderr = self.stderr()
            self.close()
            limit = f"{self._startup_timeout:.0f} s"
            raise PolicyPackError(f"the policy pack accepted no connection within {limit}\n{stderr}") from error
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def _stub(self) -> analyzer_pb2_grpc.AnalyzerStub:
        if self._channel is None:
            raise PolicyPackError("the policy pack is not running")
        return analyzer_pb2_grpc.AnalyzerStub(self._channel)

    def _start(self) -> None:
        launch = pack_launch(
            self.pack_dir,
            project=self.project,
            stack=self.stack,
            dry_run=self.dry_run,
            stack_config=self.stack_config,
            python=self._python,
        )
        self._environment = {k: v for k, v in launch.environment if k.startswith("PULUMI_")}
        prelaunched = take_prelaunched(launch)  # the same process, started earlier
        if prelaunched is None:
            self._process = launch.start(self._stderr)
        else:
            self._stderr.close()
            self._process, self._stderr = prelaunched
        port = self._read_port()
        _CHANNELS_MADE.set()
        self._channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)]
        )
        grpc.channel_ready_future(self._channel).result(timeout=self._startup_timeout)
        self._handshake()
        self._stub.ConfigureStack(
            analyzer_pb2.AnalyzerStackConfigureRequest(
                stack=self.stack,
                project=self.project,
                organization="organization",
                dry_run=self.dry_run,
                config=self.stack_config,
                tags=self.stack_tags,
            ),
            timeout=_RPC_TIMEOUT,
        )
        self._load_analyzer_info()
        self.levels = {p.name: p.level for p in self.policies}
        self._config = {  # what the pack applies before Configure: each policy's schema defaults
            p.name: {k: v["default"] for k, v in (p.config_schema.get("properties") or {}).items() if "default" in v}
            for p in self.policies
        }

    def _read_port(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + self._startup_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PolicyPackError(f"the policy pack printed no port within {self._startup_timeout:.0f} s")
                if selector.select(timeout=remaining):
                    chunk = os.read(self._process.stdout.fileno(), 64)
                    if not chunk:
                        raise PolicyPackError(f"the policy pack exited{self._exit_status()}:\n{self.stderr()}")
                    buffer += chunk
        line = buffer.split(b"\n", 1)[0].strip()
        if not line.isdigit():
            raise PolicyPackError(f"the policy pack printed {line!r} instead of its port")
        return int(line)

    def _handshake(self) -> None:
        request = analyzer_pb2.AnalyzerHandshakeRequest(
            engine_address=PLACEHOLDER_ENGINE, root_directory=str(self.pack_dir), program_directory=str(self.pack_dir)
        )
        try:
            self._stub.Handshake(request, timeout=_RPC_TIMEOUT)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNIMPLEMENTED:  # the engine falls back the same way
                raise

    def _load_analyzer_info(self) -> None:
        info = self._stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=_RPC_TIMEOUT)
        self.name = info.name
        self.policies = policy_infos(info)

    @property
    def exit_code(self) -> int | None:
        """None while the pack runs, before it started, or when another process started it (and alone can tell)."""
        if self._process is None or not started_here(self._process):
            return None
        return self._process.poll()

    def _exit_status(self) -> str:
        """` (<code>)` of a pack that exited, as far as this process can know it."""
        if self._process is None or not started_here(self._process):
            return ""  # its status goes to the process that started it
        self._process.wait(timeout=5)
        return f" ({self._process.returncode})"

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def configure(self, config: Mapping[str, Mapping[str, Any]], source: str = "policy config") -> None:
        """Apply a parsed policy config file (see `load_policy_config`) the way the engine does; a config the
        pack refuses (`shipsafe_policies/floor.py`) stops here, as the engine stops before the program runs."""
        request, self.levels = configure_request(self.policies, config, source)
        try:
            self._stub.Configure(request, timeout=_RPC_TIMEOUT)
        except grpc.RpcError as error:  # update.go: "configuring policy pack ...: <the pack's message>"
            raise PolicyPackError(f"configuring policy pack {self.name}: {error.details()}") from None
        self._config = reconcile_config(self.policies, config, source)

    def _context(self) -> bytes:
        """Everything but the request a policy of this pack may read: the pack, its PULUMI_* environment (project,
        stack, dry run, organization), the stack's ConfigureStack and the policy config."""
        return json.dumps(
            [str(self.pack_dir), self._environment, self.dry_run, self.levels, self._config], sort_keys=True
        ).encode()

    def _declared_files(self, resources: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Path]:
        """The files the docker rules read for these (type, properties), under every `projectDir` configured."""
        builds = [properties for kind, properties in resources if kind in _DOCKER_TYPES]
        if not builds:  # most requests: no path to resolve
            return []
        projects = {
            (self.pack_dir / str(settings["projectDir"])).resolve()
            for settings in self._config.values()
            if isinstance(settings, Mapping) and "projectDir" in settings
        }
        return [
            project / relative
            for properties in builds
            for relative in _declared_paths(properties)
            for project in projects
        ]

    def analyze(self, recording: Recording, *, resources: bool = True) -> AnalysisReport:
        """Analyze every resource (unless `resources` is False) and then the stack, as the engine does in a preview
        or an update; `resources=False` sends only AnalyzeStack (tests of stack policies)."""
        by_urn = {r.urn: r for r in recording}
        analyzed = list(recording) if resources else []
        context = self._context()
        pending: list[tuple[bytes, str, Any]] = []  # (key, what, reused answer or call)
        # Futures keep the pack busy while the next request is being serialised.
        for resource in analyzed:
            request = analyze_request(resource, by_urn)
            declared = self._declared_files([(resource.type, resource.inputs)])
            pending.append(self._send("Analyze", request, context, declared, f"Analyze {resource.urn}"))
        stack_request = analyzer_pb2.AnalyzeStackRequest(resources=[stack_resource(r, by_urn) for r in recording])
        declared = self._declared_files((r.type, r.outputs) for r in recording)
        pending.append(self._send("AnalyzeStack", stack_request, context, declared, "AnalyzeStack"))
        try:
            responses = [self._answered(*entry) for entry in pending]
        except grpc.RpcError as error:  # a policy crashed: the engine would abort the preview too
            raise PolicyPackError(f"the policy pack failed: {error.details()}\n{self.stderr()}") from error
        report = AnalysisReport(
            self.name, recording.stack, self.policies, dict(self.levels), resources=len(recording.resources)
        )
        names = {urn: r.name for urn, r in by_urn.items()}
        fixes = {p.name: p.remediation for p in self.policies}
        for request_resource, response in zip([*analyzed, None], responses, strict=True):
            for diagnostic in response.diagnostics:
                urn = diagnostic.urn or (request_resource.urn if request_resource else "")
                if diagnostic.message.startswith(_UNKNOWN_AT_PREVIEW):
                    report.skipped.append(f"{diagnostic.policyName} on {names.get(urn, urn or '(stack)')}")
                    continue
                report.violations.append(
                    Violation(
                        policy=diagnostic.policyName,
                        level=_LEVEL_NAMES[diagnostic.enforcementLevel],
                        message=diagnostic.message.removeprefix(diagnostic.description).strip(),
                        urn=urn,
                        resource=names.get(urn, urn or "(stack)"),
                        fix=fixes.get(diagnostic.policyName, ""),
                    )
                )
        report.violations.sort(key=lambda v: (v.level != "mandatory", v.policy, v.resource, v.message))
        return report

    def _send(
        self, method: str, request: Any, context: bytes, declared: list[Path], what: str
    ) -> tuple[bytes, str, Any]:
        """The kept answer to `request`, or the call that will answer it. The request goes out as the bytes its key
        was made of (one serialisation)."""
        wire = request.SerializeToString(deterministic=True)
        key = self.reuse.key(context, wire, declared) if self.reuse.enabled else b""
        kept = self.reuse.answer(key) if self.reuse.enabled else None
        if kept is not None:
            return key, what, kept
        if self._channel is None:
            raise PolicyPackError("the policy pack is not running")
        if method not in self._calls:  # one callable per method: making one costs more than a small request
            self._calls[method] = self._channel.unary_unary(f"/pulumirpc.Analyzer/{method}")  # bytes in, bytes out
        call = self._calls[method]
        return key, what, call.future(wire, timeout=_RPC_TIMEOUT)

    def _answered(self, key: bytes, what: str, answer: Any) -> analyzer_pb2.AnalyzeResponse:
        wire = answer if isinstance(answer, bytes) else answer.result()
        if self.reuse.enabled and not isinstance(answer, bytes):
            self.reuse.keep(key, wire, what)
        return analyzer_pb2.AnalyzeResponse.FromString(wire)

    def close(self) -> None:
        # The process goes first (SIGKILL, as the engine's plugin.Close does: a pack holds no state worth a
        # goodbye); closing a channel whose server is gone returns at once, otherwise it lingers ~80 ms.
        if self._process is not None and not started_here(self._process):
            # Taken from the process that started it (`harness.pack_driver`): signalled by pid, reaped by its
            # starter, which has not waited for it yet, so the pid is still this pack's.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)
        elif self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._calls.clear()
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()


@contextmanager
def booted_in_background(
    policy_config_path: Path,
    *,
    project: str,
    stack: str,
    pack_dir: Path = POLICY_DIR,
    stack_config: Mapping[str, str] | None = None,
    reuse: str | None = None,
) -> Iterator[Callable[[Recording], AnalysisReport]]:
    """Boots the packs on a worker thread while the caller runs the program (both take about as long), and yields
    `analyze(recording)`, which waits for the boot, applies the config and analyzes. A recording of a preview goes
    to the pack of a preview, one of `up` to the pack of an update (`PULUMI_DRY_RUN=false`), as the engine starts a
    pack per deployment. `reuse`: a mode of `AnalysisReuse` (default: `SHIPSAFE_ANALYSIS_REUSE`, else on)."""
    config = load_policy_config(policy_config_path)
    shared = AnalysisReuse(reuse_mode(reuse))
    packs = {
        dry_run: PolicyPackProcess(
            pack_dir, project=project, stack=stack, stack_config=stack_config, dry_run=dry_run, reuse=shared
        )
        for dry_run in (True, False)
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        source = str(policy_config_path)
        booting = {dry_run: pool.submit(_booted, pack, config, source) for dry_run, pack in packs.items()}

        def analyze_booted(recording: Recording) -> AnalysisReport:
            return booting[recording.preview].result().analyze(recording)

        try:
            yield analyze_booted
        finally:
            wait(list(booting.values()))  # a boot still under way must not race the close
            for pack in packs.values():
                pack.close()


def _booted(pack: PolicyPackProcess, config: Mapping[str, Mapping[str, Any]], source: str) -> PolicyPackProcess:
    pack.__enter__()
    pack.configure(config, source)
    return pack


def analyze(recording: Recording, policy_config_path: Path, *, pack_dir: Path = POLICY_DIR) -> AnalysisReport:
    """Run the pack over a recorded stack with that stack's policy config (one pack process per call, of a preview
    or of an update as the recording was run)."""
    config = load_policy_config(policy_config_path)
    with PolicyPackProcess(
        pack_dir, project=recording.project, stack=recording.stack, dry_run=recording.preview
    ) as pack:
        pack.configure(config, str(policy_config_path))
        return pack.analyze(recording)


WAIVER_REPORT = "waiver-report"
"""The pack's policy that reports each per-resource waiver (`policy/shipsafe_policies/waivers.py`)."""


def format_report(report: AnalysisReport) -> str:
    """Violations grouped by enforcement level, then policy: resource, what is wrong, how to fix it."""
    lines = [
        f"Policy pack {report.pack} on stack {report.stack}: "
        f"{len(report.policies)} policies, {report.resources} resources"
    ]
    waivers = [v for v in report.violations if v.policy == WAIVER_REPORT]
    for level in ("mandatory", "advisory"):
        found = [v for v in report.violations if v.level == level and v.policy != WAIVER_REPORT]
        lines.append(f"\n{level.upper()} violations: {len(found)}")
        policy = None
        for violation in found:
            if violation.policy != policy:
                policy = violation.policy
                lines.append(f"  [{policy}]  fix: {violation.fix}")
            lines.append(f"    - {violation.resource}: {violation.message}")
    lines.append(f"\nWAIVERS (one rule waived for one resource, with its reason): {len(waivers)}")
    lines += [f"    - {v.resource}: {v.message}" for v in waivers]
    if report.skipped:
        lines.append(f"\nSkipped (values unknown until `pulumi up`): {', '.join(sorted(set(report.skipped)))}")
    disabled = sorted(name for name, level in report.levels.items() if level == "disabled")
    if disabled:
        lines.append(f"Disabled for this stack: {', '.join(disabled)}")
    verdict = "FAILED" if report.mandatory_violations else "passed"
    lines.append(
        f"\nPolicy check {verdict}: {len(report.mandatory_violations)} mandatory, "
        f"{len([v for v in report.advisory_violations if v.policy != WAIVER_REPORT])} advisory, "
        f"{len(waivers)} waived."
    )
    return "\n".join(lines)
