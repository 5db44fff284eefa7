"""The Dockerfile rules judge the chapter's image rules for Node, Python, Go and a dependency-free app, and each
finding names the language's own fix.

Each rule is called as pulumi-policy calls it: its `validate` with the `ResourceValidationArgs` of one
`docker:index/image:Image`, whose properties are what pulumi-docker's Check returns (`harness/provider_check.py`:
`build.context` and `build.dockerfile`); the rule reads the Dockerfile and the context from disk, as the pack does.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel, PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy
from pulumi_policy.policy import PolicyCustomTimeouts

from harness.analyzer import POLICY_DIR
from harness.stack_config import REPO_ROOT

DOCKERIGNORE = ".git\n.env*\nnode_modules\n"
DIGEST = "@sha256:" + "a" * 64
"""Every base is pinned by digest, so docker-base-image-digest (advisory) has nothing to say about the good variants."""

NODE_DOCKERFILE = f"""\
# The chapter's NestJS image (deployment-pipeline-chapter.txt), port 3002.
FROM node:20.18.1-alpine3.20{DIGEST} AS builder
WORKDIR /app
COPY package*.json ./
RUN npm ci
COPY . .
RUN npm run build

FROM node:20.18.1-alpine3.20{DIGEST} AS production
WORKDIR /app
ENV NODE_ENV=production
COPY package*.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=builder /app/dist ./dist
USER node
EXPOSE 3002
HEALTHCHECK --interval=10s CMD ["node", "-e", "fetch('http://127.0.0.1:3002/healthz').then(r => process.exit(!r.ok))"]
CMD ["node", "dist/main.js"]
"""
NODE_FILES = {
    "package.json": '{"name": "api", "scripts": {"build": "nest build"}, "dependencies": {"@nestjs/core": "10.4.15"}}',
    "package-lock.json": '{"name": "api", "lockfileVersion": 3, "packages": {}}',
}

GO_DOCKERFILE = f"""\
FROM golang:1.23.4-bookworm{DIGEST} AS builder
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /app/server ./cmd/server

FROM gcr.io/distroless/static-debian12:nonroot{DIGEST}
COPY --from=builder /app/server /app/server
USER nonroot:nonroot
EXPOSE 3002
HEALTHCHECK CMD ["/app/server", "-healthcheck"]
CMD ["/app/server"]
"""
GO_FILES = {
    "go.mod": "module example.com/server\n\ngo 1.23\n\nrequire github.com/go-chi/chi/v5 v5.1.0\n",
    "go.sum": "github.com/go-chi/chi/v5 v5.1.0 h1:acVI1TYaD+hhedDJ3r54HyA6sExp3HfXq7QWEEY/xMw=\n",
}

STATIC_DOCKERFILE = f"""\
# A binary built by the app's own CI, copied in: nothing to build or lock. USER is the stack's runAsUser.
FROM gcr.io/distroless/static-debian12:nonroot{DIGEST}
COPY server /app/server
USER 10001:10001
HEALTHCHECK CMD ["/app/server", "-healthcheck"]
CMD ["/app/server"]
"""
STATIC_FILES = {"server": "\x7fELF"}

SCRIPT_DOCKERFILE = f"""\
# One script and the standard library: no requirements, no builder stage.
FROM python:3.12.8-slim-bookworm{DIGEST}
COPY app.py /app/app.py
USER 10001:10001
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3002/healthz')"]
CMD ["python", "/app/app.py"]
"""
SCRIPT_FILES = {"app.py": "import http.server\n"}

NODE_SCRIPT_DOCKERFILE = f"""\
# A Node script with no dependencies: package.json names it, nothing to install or build.
FROM node:20.18.1-alpine3.20{DIGEST}
WORKDIR /app
COPY package.json server.js ./
USER node
HEALTHCHECK CMD ["node", "-e", "fetch('http://127.0.0.1:3002/healthz').then(r => process.exit(!r.ok))"]
CMD ["node", "server.js"]
"""
NODE_SCRIPT_FILES = {"package.json": '{"name": "tiny", "main": "server.js"}', "server.js": "require('http')\n"}


def write_context(directory: Path, dockerfile: str, files: Mapping[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    (directory / ".dockerignore").write_text(DOCKERIGNORE)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture(scope="module")
def rules() -> Iterator[dict[str, ResourceValidationPolicy]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(POLICY_DIR))
        policies = importlib.import_module("shipsafe_policies").all_policies()
        yield {p.name: p for p in policies if isinstance(p, ResourceValidationPolicy) and p.name.startswith("docker-")}


PULUMI_DOCKER, DOCKER_BUILD = "docker:index/image:Image", "docker-build:index:Image"


def image_props(resource_type: str, context: Path) -> dict[str, object]:
    """An image build's inputs as the provider's Check returns them (pulumi-docker `build`, docker-build's
    `context.location`/`dockerfile.location`)."""
    dockerfile = str(context / "Dockerfile")
    if resource_type == DOCKER_BUILD:
        return {"context": {"location": str(context)}, "dockerfile": {"location": dockerfile}, "tags": ["reg/app:x"]}
    return {"build": {"context": str(context), "dockerfile": dockerfile}, "imageName": "reg/app:x"}


def judge(rule: ResourceValidationPolicy, context: Path, resource_type: str = PULUMI_DOCKER) -> list[str]:
    """The rule's violations on one image build from `context`, as the pack reports them."""
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    urn = f"urn:pulumi:staging::shipsafe::{resource_type}::app-image"
    props = image_props(resource_type, context)
    args = ResourceValidationArgs(resource_type, props, urn, "app-image", options, None, {})
    found: list[str] = []
    rule.validate(args, lambda message, _urn: found.append(message))
    return found


def judge_all(rules: Mapping[str, ResourceValidationPolicy], context: Path) -> dict[str, list[str]]:
    return {name: found for name, rule in rules.items() if (found := judge(rule, context))}


GOOD = {
    "node": (NODE_DOCKERFILE, NODE_FILES),
    "go": (GO_DOCKERFILE, GO_FILES),
    "static-binary": (STATIC_DOCKERFILE, STATIC_FILES),
    "single-script": (SCRIPT_DOCKERFILE, SCRIPT_FILES),
    "node-script": (NODE_SCRIPT_DOCKERFILE, NODE_SCRIPT_FILES),
}


@pytest.mark.parametrize("variant", sorted(GOOD))
def test_a_good_image_of_each_kind_passes_every_dockerfile_rule(
    variant: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    dockerfile, files = GOOD[variant]
    assert judge_all(rules, write_context(tmp_path, dockerfile, files)) == {}


def test_the_reference_python_app_passes_every_dockerfile_rule(rules: dict[str, ResourceValidationPolicy]) -> None:
    assert judge_all(rules, REPO_ROOT / "app") == {}


# (id, good variant, text replaced, replacement, files changed (None deletes), rule, phrases of its message)
BAD = [
    ("node-npm-install", "node", "RUN npm ci\n", "RUN npm install\n", {}, "docker-reproducible-deps",
     ["npm install", "use `npm ci` with the committed package-lock.json"]),
    ("node-no-lockfile", "node", "", "", {"package-lock.json": None}, "docker-reproducible-deps",
     ["no lockfile", "`npm ci`"]),
    ("node-yarn-unfrozen", "node", "RUN npm ci\n", "RUN yarn install\n", {}, "docker-reproducible-deps",
     ["yarn install --frozen-lockfile"]),
    ("node-pnpm-unfrozen", "node", "RUN npm ci\n", "RUN pnpm install\n", {}, "docker-reproducible-deps",
     ["pnpm install --frozen-lockfile"]),
    ("node-single-stage", "node", "COPY --from=builder /app/dist ./dist\n", "COPY . .\nRUN npm run build\n", {},
     "docker-reproducible-deps", ["multi-stage", "FROM node:20-alpine AS builder", "RUN npm ci"]),
    ("node-no-user", "node", "USER node\n", "", {}, "docker-non-root-user", ["sets no USER", "`USER node`"]),
    ("node-root-user", "node", "USER node\n", "USER root\n", {}, "docker-non-root-user", ["is root", "`USER node`"]),
    ("node-no-healthcheck", "node", "HEALTHCHECK --interval=10s CMD", "LABEL x=y\n# ", {}, "docker-healthcheck",
     ['HEALTHCHECK CMD ["node", "-e", "fetch(']),
    ("node-secret-env", "node", "ENV NODE_ENV=production\n", "ENV NPM_TOKEN=npm_abcdefabcdef\n", {},
     "docker-no-baked-secrets", ["NPM_TOKEN", "RUN --mount=type=secret,id=npm_token,env=NPM_TOKEN npm ci"]),
    ("node-copied-npmrc", "node", "COPY package*.json ./\nRUN npm ci\n", "COPY .npmrc package*.json ./\nRUN npm ci\n",
     {".npmrc": "//registry.npmjs.org/:_authToken=npm_0123456789abcdef\n"}, "docker-no-baked-secrets",
     [".npmrc", "target=/app/.npmrc npm ci"]),
    ("node-tls-off", "node", "ENV NODE_ENV=production\n", "ENV NODE_TLS_REJECT_UNAUTHORIZED=0\n", {},
     "docker-reproducible-deps", ["NODE_TLS_REJECT_UNAUTHORIZED=0", "disables verification"]),
    ("node-shell-cmd", "node", 'CMD ["node", "dist/main.js"]', "CMD node dist/main.js", {},
     "docker-runtime-contract", ['CMD ["node", "dist/main.js"]']),
    ("node-no-dockerignore-env", "node", "", "", {".dockerignore": ".git\n"}, "docker-context-excludes-secrets",
     [".dockerignore does not exclude .env*"]),
    ("node-floating-base", "node", f"FROM node:20.18.1-alpine3.20{DIGEST} AS builder",
     "FROM node:20-alpine3.20 AS builder", {}, "docker-pinned-base-images",
     ["tag 20-alpine3.20 floats", "node:<x.y.z>-alpine3.20"]),
    ("node-host-node-modules", "node", "", "", {".dockerignore": ".git\n.env*\n"}, "docker-reproducible-deps",
     ["host's node_modules", "add a `node_modules` line to .dockerignore"]),
    ("go-no-go-sum", "go", "COPY go.mod go.sum ./", "COPY go.mod ./", {"go.sum": None}, "docker-reproducible-deps",
     ["no go.sum", "`COPY go.mod go.sum ./` and `RUN go mod download`"]),
    ("go-mod-mod", "go", "go build -trimpath", "go build -mod=mod -trimpath", {}, "docker-reproducible-deps",
     ["-mod=mod", "-mod=readonly"]),
    ("go-goflags-mod", "go", "RUN go mod download\n", "ENV GOFLAGS=-mod=mod\nRUN go mod download\n", {},
     "docker-reproducible-deps", ["GOFLAGS=-mod=mod", "-mod=readonly"]),
    ("go-goflags-mod-in-run", "go", "RUN CGO_ENABLED=0 go build", "RUN GOFLAGS=-mod=mod CGO_ENABLED=0 go build", {},
     "docker-reproducible-deps", ["GOFLAGS=-mod=mod"]),
    ("go-get-in-build", "go", "RUN go mod download\n", "RUN go get ./...\n", {}, "docker-reproducible-deps",
     ["rewrites go.mod/go.sum"]),
    ("go-install-latest", "go", "RUN go mod download\n", "RUN go install github.com/a/b/cmd/gen@latest\n", {},
     "docker-reproducible-deps", ["moving version", "go install <module>@v<version>"]),
    ("go-sumdb-off", "go", "RUN go mod download\n", "ENV GOSUMDB=off\nRUN go mod download\n", {},
     "docker-reproducible-deps", ["GOSUMDB=off"]),
    ("go-toolchain-final", "go", f"FROM gcr.io/distroless/static-debian12:nonroot{DIGEST}\n", "FROM builder\n", {},
     "docker-reproducible-deps", ["multi-stage", "distroless or scratch stage"]),
    ("go-no-user", "go", "USER nonroot:nonroot\n", "", {}, "docker-non-root-user", ["`USER nonroot:nonroot`"]),
    ("go-no-healthcheck", "go", 'HEALTHCHECK CMD ["/app/server", "-healthcheck"]\n', "", {}, "docker-healthcheck",
     ['HEALTHCHECK CMD ["/app/server", "-healthcheck"]']),
    ("go-shell-healthcheck", "go", 'HEALTHCHECK CMD ["/app/server", "-healthcheck"]', "HEALTHCHECK CMD /app/server -x",
     {}, "docker-healthcheck", ["needs /bin/sh", 'HEALTHCHECK CMD ["/app/server", "-healthcheck"]']),
    ("go-secret-arg", "go", "WORKDIR /src\n", "WORKDIR /src\nARG GITHUB_TOKEN\n", {}, "docker-no-baked-secrets",
     ["GITHUB_TOKEN", "go mod download"]),
    ("go-copied-netrc", "go", "COPY go.mod go.sum ./", "COPY .netrc go.mod go.sum ./", {}, "docker-no-baked-secrets",
     ["target=/root/.netrc go mod download"]),
    ("go-copied-netrc-read", "go", "COPY go.mod go.sum ./", "COPY .netrc go.mod go.sum ./",
     {".netrc": "machine github.com login x password ghp_abc\n"}, "docker-no-baked-secrets",
     ["target=/root/.netrc go mod download"]),
    ("static-no-healthcheck", "static-binary", 'HEALTHCHECK CMD ["/app/server", "-healthcheck"]\n', "", {},
     "docker-healthcheck", ['HEALTHCHECK CMD ["/app/<binary>", "-healthcheck"]']),
    ("static-root", "static-binary", "USER 10001:10001\n", "USER 0:0\n", {}, "docker-non-root-user", ["is root"]),
    ("static-copied-env", "static-binary", "COPY server /app/server\n", "COPY server .env /app/\n", {},
     "docker-no-baked-secrets", [".env copies credentials"]),
    ("script-unlocked-pip", "single-script", "COPY app.py /app/app.py\n",
     "COPY app.py requirements.txt /app/\nRUN pip install -r /app/requirements.txt\n", {"requirements.txt": "flask\n"},
     "docker-reproducible-deps", ["pip install --require-hashes -r requirements.txt"]),
    ("script-single-stage-pip", "single-script", "COPY app.py /app/app.py\n",
     "COPY . /app/\nRUN pip install --require-hashes -r /app/requirements.txt\n", {"requirements.txt": "flask\n"},
     "docker-reproducible-deps", ["multi-stage", "FROM python:3.12-slim AS builder"]),
    ("script-uv-unlocked", "single-script", "COPY app.py /app/app.py\n", "COPY . /app/\nRUN uv sync\n",
     {"uv.lock": "", "pyproject.toml": '[project]\nname = "a"\ndependencies = ["flask"]\n'},
     "docker-reproducible-deps", ["`uv sync --locked`"]),
    ("script-pyproject-without-lock", "single-script", "", "",
     {"pyproject.toml": '[project]\nname = "a"\ndependencies = ["flask"]\n'}, "docker-reproducible-deps",
     ["no lockfile", "pip-compile --generate-hashes"]),
    ("node-script-gains-dependencies", "node-script", "", "",
     {"package.json": '{"name": "tiny", "dependencies": {"express": "4.21.2"}}'}, "docker-reproducible-deps",
     ["no lockfile", "`npm ci`"]),
    ("script-no-user", "single-script", "USER 10001:10001\n", "", {}, "docker-non-root-user", ["useradd"]),
    ("script-created-root", "single-script", "USER 10001:10001\n", "RUN useradd --non-unique --uid 0 app\nUSER app\n",
     {}, "docker-non-root-user", ["USER app is root"]),
    ("unknown-language-build", "static-binary", "COPY server /app/server\n",
     "COPY . /src\nRUN cargo build --release\n", {}, "docker-package-manager-known",
     ["could not identify a package manager in `cargo build --release`"]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "good", "old", "new", "files", "rule", "phrases"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_variant_is_caught_with_the_language_fix(
    case: str,
    good: str,
    old: str,
    new: str,
    files: dict[str, str | None],
    rule: str,
    phrases: list[str],
    rules: dict[str, ResourceValidationPolicy],
    tmp_path: Path,
) -> None:
    dockerfile, good_files = GOOD[good]
    assert old in dockerfile, f"{case}: the good variant has no {old!r}"
    context = write_context(tmp_path, dockerfile.replace(old, new, 1), good_files)
    for name, text in files.items():
        if text is None:
            (context / name).unlink()
        else:
            (context / name).write_text(text)
    found = judge(rules[rule], context)
    assert found, f"{case}: {rule} did not fire; the others found {judge_all(rules, context)}"
    assert any(all(phrase in message for phrase in phrases) for message in found), found


def test_docker_build_images_are_judged_alike(rules: dict[str, ResourceValidationPolicy], tmp_path: Path) -> None:
    good = write_context(tmp_path / "good", NODE_DOCKERFILE, NODE_FILES)
    assert {name: judge(rule, good, DOCKER_BUILD) for name, rule in rules.items()} == {name: [] for name in rules}
    bad = write_context(tmp_path / "bad", NODE_DOCKERFILE.replace("RUN npm ci\n", "RUN npm install\n"), NODE_FILES)
    assert any("use `npm ci`" in m for m in judge(rules["docker-reproducible-deps"], bad, DOCKER_BUILD))


@pytest.mark.parametrize(
    "creates",
    [
        "RUN groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid 10001 --no-create-home app",
        "RUN addgroup -S -g 10001 app && adduser -S -D -u 10001 -G app app",
    ],
)
def test_a_created_named_user_passes(creates: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path) -> None:
    dockerfile = SCRIPT_DOCKERFILE.replace("USER 10001:10001\n", f"{creates}\nUSER app\n")
    assert judge_all(rules, write_context(tmp_path, dockerfile, SCRIPT_FILES)) == {}


def test_copying_from_an_image_is_not_a_builder_stage(
    rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    """One stage that builds and copies a binary out of another image (`COPY --from=<image>`) is still one stage."""
    single = NODE_DOCKERFILE.replace(f"FROM node:20.18.1-alpine3.20{DIGEST} AS production\n", "")
    single = single.replace("COPY --from=builder /app/dist ./dist", "COPY --from=busybox:1.36.1 /bin/wget /bin/wget")
    found = judge(rules["docker-reproducible-deps"], write_context(tmp_path, single, NODE_FILES))
    assert any("use a multi-stage build" in message for message in found), found


def test_installing_a_tool_is_not_running_it(rules: dict[str, ResourceValidationPolicy], tmp_path: Path) -> None:
    """`apk add npm yarn` installs the tools; it does not run `yarn` (an unlocked install) or build anything."""
    dockerfile = STATIC_DOCKERFILE.replace("COPY server", "RUN apk add --no-cache nodejs npm go yarn\nCOPY server")
    assert judge_all(rules, write_context(tmp_path, dockerfile, STATIC_FILES)) == {}


def test_an_unknown_language_does_not_fail_the_lock_rule(
    rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    dockerfile = STATIC_DOCKERFILE.replace("COPY server /app/server\n", "COPY . /src\nRUN bundle install\n")
    context = write_context(tmp_path, dockerfile, STATIC_FILES)
    assert judge(rules["docker-reproducible-deps"], context) == []
    assert rules["docker-package-manager-known"].enforcement_level == EnforcementLevel.ADVISORY
    assert judge(rules["docker-package-manager-known"], context)


# The same unlocked install, started through every wrapper a shell offers: each is judged as the direct command.
WRAPPED_INSTALLS = [
    'RUN sh -c "npm install"\n',
    "RUN bash -lc 'cd /app && npm install'\n",
    'RUN /bin/sh -ec "npm install --no-audit"\n',
    'RUN ["sh", "-c", "npm install"]\n',
    'RUN ["npm", "install"]\n',
    "RUN env NODE_ENV=development npm install\n",
    "RUN set -eux; if [ -f package-lock.json ]; then npm install; fi\n",
    "RUN (cd /app && npm install) | tee /tmp/log 2>&1\n",
    'RUN sh -c "bash -c \\"npm install\\""\n',
    "RUN <<EOF\nset -e\nnpm install\nEOF\n",
    "RUN sudo -u node -E npm install\n",
    "RUN nice -n 10 npm install\n",
    'RUN su node -c "npm install"\n',
]


@pytest.mark.parametrize("wrapped", WRAPPED_INSTALLS)
def test_a_shell_wrapper_does_not_hide_an_unlocked_install(
    wrapped: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    context = write_context(tmp_path, NODE_DOCKERFILE.replace("RUN npm ci\n", wrapped, 1), NODE_FILES)
    found = judge(rules["docker-reproducible-deps"], context)
    assert any("use `npm ci` with the committed package-lock.json" in message for message in found), found
    assert judge(rules["docker-package-manager-known"], context) == []


@pytest.mark.parametrize(
    "wrapped",
    ['RUN bash -c "pip install flask==3.1.0 gunicorn"\n', "RUN env PIP_NO_CACHE_DIR=1 pip install -r req.txt\n"],
)
def test_a_shell_wrapper_does_not_hide_an_unhashed_pip_install(
    wrapped: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    dockerfile = SCRIPT_DOCKERFILE.replace("COPY app.py /app/app.py\n", f"COPY app.py /app/app.py\n{wrapped}")
    found = judge(rules["docker-reproducible-deps"], write_context(tmp_path, dockerfile, SCRIPT_FILES))
    assert any("use `pip install --require-hashes -r requirements.txt`" in message for message in found), found


@pytest.mark.parametrize(
    "wrapped", ['RUN sh -c "npm ci"\n', 'RUN ["/bin/bash", "-euo", "pipefail", "-c", "npm ci 2>&1 | tee /tmp/log"]\n']
)
def test_a_wrapped_locked_install_passes(
    wrapped: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    context = write_context(tmp_path, NODE_DOCKERFILE.replace("RUN npm ci\n", wrapped, 1), NODE_FILES)
    assert judge_all(rules, context) == {}


def test_a_wrapped_command_names_the_language(rules: dict[str, ResourceValidationPolicy], tmp_path: Path) -> None:
    """`CMD ["sh", "-c", "node server.js"]` runs node: the fixes are Node's, not a plain binary's."""
    dockerfile = STATIC_DOCKERFILE.replace('CMD ["/app/server"]', 'CMD ["sh", "-c", "exec node /app/server.js"]')
    dockerfile = dockerfile.replace("USER 10001:10001\n", "")
    found = judge(rules["docker-non-root-user"], write_context(tmp_path, dockerfile, STATIC_FILES))
    assert any("`USER node`" in message for message in found), found


# A compile in the final stage, in languages the pack knows and in ones it does not: the toolchain ships either way.
FINAL_STAGE_COMPILES = [
    ("rust", "RUN cargo build --release --locked\n", "the Rust toolchain (cargo)", "FROM rust:<version> AS builder"),
    ("maven", "RUN ./mvnw -B clean package -DskipTests\n", "a JDK with Maven", "eclipse-temurin:21-jre"),
    ("gradle", 'RUN ["./gradlew", "bootJar"]\n', "a JDK with Gradle", "FROM gradle:<version> AS builder"),
    ("dotnet", 'RUN sh -c "dotnet publish -c Release -o /app"\n', "the .NET SDK", "dotnet/aspnet"),
    ("make", "RUN make -j2 && make install\n", "a C/C++ toolchain (make)", "COPY --from=builder"),
]


@pytest.mark.parametrize(("tool", "compile_step", "toolchain", "fix"), FINAL_STAGE_COMPILES, ids=lambda v: str(v)[:8])
def test_a_compile_in_the_final_stage_ships_its_toolchain_in_any_language(
    tool: str, compile_step: str, toolchain: str, fix: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    """Single-stage, and in the final stage of a build that also copies from a builder: both ship the compiler."""
    single = STATIC_DOCKERFILE.replace("COPY server /app/server\n", f"COPY . /src\nWORKDIR /src\n{compile_step}")
    copy = "COPY --from=builder /app/server /app/server\n"
    multi = GO_DOCKERFILE.replace(copy, f"{copy}COPY . /src\n{compile_step}")
    for name, dockerfile in (("single", single), ("multi", multi)):
        context = write_context(tmp_path / name, dockerfile, GO_FILES if name == "multi" else STATIC_FILES)
        found = judge(rules["docker-reproducible-deps"], context)
        assert any(f"compiles in the final stage, so {toolchain} ships" in m and fix in m for m in found), found


def test_a_compile_in_a_builder_stage_passes(rules: dict[str, ResourceValidationPolicy], tmp_path: Path) -> None:
    dockerfile = f"""\
FROM rust:1.83.0-bookworm{DIGEST} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM gcr.io/distroless/cc-debian12:nonroot{DIGEST}
COPY --from=builder /src/target/release/server /app/server
USER nonroot:nonroot
HEALTHCHECK CMD ["/app/server", "-healthcheck"]
CMD ["/app/server"]
"""
    found = judge_all(rules, write_context(tmp_path, dockerfile, {"Cargo.toml": "", "Cargo.lock": ""}))
    assert list(found) == ["docker-package-manager-known"], found


# A package manager's config file is judged by what the context's copy holds, and the fix names its own tool.
PNPM_FILES = {
    **NODE_FILES,
    "package.json": '{"name": "api", "packageManager": "pnpm@9.15.0", "dependencies": {"a": "1"}}',
}
NO_INSTALL = NODE_DOCKERFILE.replace("RUN npm ci\n", "RUN echo ok\n", 1)
PNPM_DOCKERFILE = NODE_DOCKERFILE.replace("RUN npm ci\n", "RUN corepack enable && pnpm install --frozen-lockfile\n", 1)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (".npmrc", "engine-strict=true\nsave-exact=true\n"),
        (".npmrc", "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n"),
        (".yarnrc.yml", 'nodeLinker: node-modules\nnpmRegistryServer: "https://registry.npmjs.org"\n'),
        ("pip.conf", "[global]\nindex-url = https://pypi.example.com/simple\n"),
        ("ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    ],
)
def test_a_config_file_without_credentials_may_be_copied(
    name: str, text: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    dockerfile = NODE_DOCKERFILE.replace(
        "COPY package*.json ./\nRUN npm ci\n", f"COPY {name} package*.json ./\nRUN npm ci\n"
    )
    context = write_context(tmp_path, dockerfile, {**NODE_FILES, name: text})
    assert judge(rules["docker-no-baked-secrets"], context) == []


@pytest.mark.parametrize(
    ("name", "text", "files", "dockerfile", "fix"),
    [
        (".npmrc", "//npm.pkg.github.com/:_authToken=ghp_0123456789abcdef\n", PNPM_FILES, PNPM_DOCKERFILE,
         "target=/app/.npmrc pnpm install --frozen-lockfile`"),
        (".npmrc", "@acme:registry=https://npm.acme.dev/\n//npm.acme.dev/:_auth=dXNlcjpwYXNz\n", PNPM_FILES,
         PNPM_DOCKERFILE.replace("RUN corepack enable && pnpm install --frozen-lockfile\n", "RUN echo ok\n"),
         "target=/app/.npmrc pnpm install --frozen-lockfile`"),
        (".yarnrc.yml", "npmScopes:\n  acme:\n    npmAuthToken: npm_abcdef0123456789\n", NODE_FILES,
         NO_INSTALL, "target=/app/.yarnrc.yml yarn install --immutable`"),
        ("pip.conf", "[global]\nindex-url = https://__token__:pypi-abc@pypi.example.com/simple\n", NODE_FILES,
         NO_INSTALL, "target=/etc/pip.conf pip install --require-hashes"),
        ("id_ed25519", "ssh-ed25519-key", NODE_FILES, NODE_DOCKERFILE, "target=/app/id_ed25519 npm ci"),
        ("tls.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", NODE_FILES, NODE_DOCKERFILE,
         "tls.pem copies credentials"),
    ],
)  # fmt: skip
def test_a_config_file_with_credentials_is_refused_with_its_tool_and_target(
    name: str,
    text: str,
    files: dict[str, str],
    dockerfile: str,
    fix: str,
    rules: dict[str, ResourceValidationPolicy],
    tmp_path: Path,
) -> None:
    """Project-level files (.npmrc, .yarnrc.yml) mount at the project path the COPY put them in; pip reads
    /etc/pip.conf; the step named is the stage's own install, else the project's package manager's."""
    first_install = dockerfile.split("COPY package*.json ./\n", 1)
    dockerfile = f"{first_install[0]}COPY {name} package*.json ./\n{first_install[1]}"
    found = judge(rules["docker-no-baked-secrets"], write_context(tmp_path, dockerfile, {**files, name: text}))
    assert any(fix in message for message in found), found


@pytest.mark.parametrize(
    ("files", "install", "output"),
    [
        (PNPM_FILES, "RUN corepack enable && pnpm install --frozen-lockfile`, `RUN pnpm run build`", "<build output"),
        ({**NODE_FILES, "yarn.lock": "", "package-lock.json": None, ".yarnrc.yml": "nodeLinker: node-modules\n"},
         "COPY package.json yarn.lock .yarnrc.yml ./`, `RUN corepack enable && yarn install --immutable`", "<build"),
        ({**NODE_FILES, "tsconfig.json": '{"compilerOptions": {"outDir": "./build"}}'}, "RUN npm ci`",
         "/app/build ./build"),
        ({**NODE_FILES, "package.json": '{"main": "out/server.js", "dependencies": {"a": "1"}}'}, "RUN npm ci`",
         "/app/out ./out"),
    ],
)  # fmt: skip
def test_the_node_builder_fix_follows_the_package_manager_and_the_build_output(
    files: dict[str, str | None], install: str, output: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    single = NODE_DOCKERFILE.replace("COPY --from=builder /app/dist ./dist\n", "COPY . .\nRUN npm run build\n")
    context = write_context(tmp_path, single, {n: t for n, t in files.items() if t is not None})
    found = judge(rules["docker-reproducible-deps"], context)
    assert any("multi-stage" in m and install in m and output in m and "dist" not in m for m in found), found


@pytest.mark.parametrize(
    "base",
    [
        "gcr.io/distroless/static-debian12:nonroot",
        "gcr.io/distroless/static-debian12",
        "cgr.dev/chainguard/static:latest",
    ],
)
def test_a_base_without_version_tags_is_pinned_by_digest(
    base: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    """Distroless and Chainguard's free images publish no version tags: the fix is the digest, which then passes."""
    unpinned = GO_DOCKERFILE.replace(f"gcr.io/distroless/static-debian12:nonroot{DIGEST}", base)
    found = judge(rules["docker-pinned-base-images"], write_context(tmp_path / "unpinned", unpinned, GO_FILES))
    assert len(found) == 1 and "has no version tags, so only a digest pins it" in found[0], found
    assert "@sha256:<digest>" in found[0] and "<x.y.z>" not in found[0], found
    pinned = GO_DOCKERFILE.replace(f"gcr.io/distroless/static-debian12:nonroot{DIGEST}", base + DIGEST)
    assert judge(rules["docker-pinned-base-images"], write_context(tmp_path / "pinned", pinned, GO_FILES)) == []


@pytest.mark.parametrize("variant", sorted(GOOD))
def test_the_non_root_fix_reads_as_a_sentence_in_every_language(
    variant: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    dockerfile, files = GOOD[variant]
    without_user = "".join(line for line in dockerfile.splitlines(keepends=True) if not line.startswith("USER "))
    found = judge(rules["docker-non-root-user"], write_context(tmp_path, without_user, files))
    assert len(found) == 1, found
    assert "; end it with `USER " in found[0] or "; end it with a numeric `USER" in found[0], found
    if variant == "single-script":
        assert "end it with `USER 10001:10001` after creating the user (`RUN useradd" in found[0], found


# One rule for tools in every ecosystem (languages.TOOL_PINNING): a version pin is not a lock.
TOOL_INSTALLS = [
    ("node", "RUN npm ci\n", "RUN npm install -g @nestjs/cli@10.4.9 && npm ci\n", "a version pin is not a lock"),
    ("node", "RUN npm ci\n", "RUN npm i --global pnpm@9.15.0 && npm ci\n", "corepack enable"),
    ("node", "RUN npm ci\n", "RUN yarn global add typescript@5.7.2 && npm ci\n", "a version pin is not a lock"),
    ("single-script", "COPY app.py /app/app.py\n", "RUN pip install poetry==1.8.5\n", "a version pin is not a lock"),
    ("single-script", "COPY app.py /app/app.py\n", "RUN uv tool install ruff==0.8.4\n", "a version pin is not a lock"),
    ("go", "RUN go mod download\n", "RUN go mod download && go install golang.org/x/tools/cmd/stringer@latest\n",
     "moving version"),
]  # fmt: skip


@pytest.mark.parametrize(("good", "old", "new", "phrase"), TOOL_INSTALLS, ids=[t[2][4:30] for t in TOOL_INSTALLS])
def test_a_tool_is_locked_alike_in_every_ecosystem(
    good: str, old: str, new: str, phrase: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    dockerfile, files = GOOD[good]
    found = judge(rules["docker-reproducible-deps"], write_context(tmp_path, dockerfile.replace(old, new, 1), files))
    assert any(phrase in message for message in found), found


def test_a_go_tool_at_a_version_is_locked(rules: dict[str, ResourceValidationPolicy], tmp_path: Path) -> None:
    """`go install module@v1.2.3` resolves the module's own go.mod and verifies every module against go.sum."""
    dockerfile, files = GOOD["go"]
    pinned = "RUN go mod download && go install golang.org/x/tools/cmd/stringer@v0.28.0\n"
    context = write_context(tmp_path, dockerfile.replace("RUN go mod download\n", pinned, 1), files)
    assert judge(rules["docker-reproducible-deps"], context) == []


def test_a_credential_file_in_the_context_is_excluded_when_the_build_copies_it_all(
    rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    """`COPY . .` takes an .npmrc holding a token as surely as `COPY .npmrc`; one without a token may stay."""
    files = {**NODE_FILES, ".npmrc": "//registry.npmjs.org/:_authToken=npm_0123456789abcdef\n"}
    found = judge(rules["docker-context-excludes-secrets"], write_context(tmp_path / "token", NODE_DOCKERFILE, files))
    assert any(".npmrc holds credentials and the build copies the whole context" in m for m in found), found
    ignored = write_context(tmp_path / "ignored", NODE_DOCKERFILE, files)
    (ignored / ".dockerignore").write_text(DOCKERIGNORE + ".npmrc\n")
    assert judge(rules["docker-context-excludes-secrets"], ignored) == []
    harmless = {**NODE_FILES, ".npmrc": "engine-strict=true\n"}
    assert (
        judge(rules["docker-context-excludes-secrets"], write_context(tmp_path / "plain", NODE_DOCKERFILE, harmless))
        == []
    )


@pytest.mark.parametrize(
    ("files", "command"),
    [
        ({"package.json": '{"main": "server/index.js"}'}, 'CMD ["node", "server/index.js"]'),
        ({"tsconfig.json": '{"compilerOptions": {"outDir": "build"}}'}, 'CMD ["node", "build/main.js"]'),
    ],
)
def test_the_node_command_fix_follows_the_project(
    files: dict[str, str], command: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    dockerfile = NODE_DOCKERFILE.replace('CMD ["node", "dist/main.js"]\n', "")
    found = judge(rules["docker-runtime-contract"], write_context(tmp_path, dockerfile, {**NODE_FILES, **files}))
    assert any(command in message for message in found), found


def test_a_heredoc_with_another_interpreter_is_not_read_as_shell(
    rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    """BuildKit runs `RUN <<EOF` with its shebang's interpreter: a Python heredoc is no unknown build step."""
    heredoc = "RUN <<EOF\n#!/usr/bin/env python3\nimport pathlib\npathlib.Path('/tmp/x').touch()\nEOF\n"
    dockerfile = SCRIPT_DOCKERFILE.replace("COPY app.py /app/app.py\n", f"COPY app.py /app/app.py\n{heredoc}")
    assert judge_all(rules, write_context(tmp_path, dockerfile, SCRIPT_FILES)) == {}


@pytest.mark.parametrize(
    ("step", "toolchain"),
    [
        ("RUN npm run build\n", "the Node build tooling and dev dependencies"),
        ("RUN pnpm build\n", "the Node build tooling and dev dependencies"),
        ("RUN npx webpack --mode production\n", "the Node build tooling (a compiler or bundler) and dev dependencies"),
    ],
)
def test_a_node_build_in_the_final_stage_of_a_multi_stage_build_ships_its_tooling(
    step: str, toolchain: str, rules: dict[str, ResourceValidationPolicy], tmp_path: Path
) -> None:
    dockerfile = NODE_DOCKERFILE.replace("USER node\n", f"COPY . .\n{step}USER node\n")
    found = judge(rules["docker-reproducible-deps"], write_context(tmp_path, dockerfile, NODE_FILES))
    assert any(f"compiles in the final stage, so {toolchain} ships" in m and "--omit=dev" in m for m in found), found
