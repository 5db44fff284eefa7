"""Compilers and build tools of every language, the ones `languages.LANGUAGES` judges and the ones it does not: a
compile step in the final stage is language-independent evidence of a build whose toolchain ships in the image."""

from __future__ import annotations

from dataclasses import dataclass

from .shell import arguments_of


@dataclass(frozen=True)
class Toolchain:
    """A compiler or build tool, whatever the language: running it in the final stage ships it in the image."""

    name: str
    """What ships, as a fix names it (`the Rust toolchain (cargo)`)."""
    builder: str
    """The base of a builder stage that has it."""
    runtime: str
    """A final-stage base without it."""
    tools: frozenset[str]
    """The commands (last path part: `./gradlew` is `gradlew`)."""
    compiles: frozenset[str] = frozenset()
    """Arguments that make a run a compile (`cargo build`, `mvn clean package`); any run compiles when empty."""

    def ships(self, words: list[str]) -> str:
        """The finding for `words` compiling in the final stage. Any language, judged or not: hadolint and checkov
        judge the Dockerfile, not the language."""
        return (
            f"`{' '.join(words)}` compiles in the final stage, so {self.name} ships in the image; compile in a builder "
            f"stage (`FROM {self.builder} AS builder`) and `COPY --from=builder` only the built artefact into a "
            f"runtime stage ({self.runtime})"
        )

    def compiled_by(self, words: list[str]) -> bool:
        for tool in self.tools:
            arguments = arguments_of(words, tool)
            if arguments is not None and (not self.compiles or self.compiles & set(arguments)):
                return True
        return False


_JRE = "a JRE image such as eclipse-temurin:21-jre"
_NODE_RUNTIME = "node:<version>-slim with `npm ci --omit=dev`"
TOOLCHAINS: tuple[Toolchain, ...] = (
    Toolchain("the Rust toolchain (cargo)", "rust:<version>", "gcr.io/distroless/cc-debian12",
              frozenset({"cargo"}), frozenset({"build", "install", "rustc"})),
    Toolchain("the Rust compiler (rustc)", "rust:<version>", "gcr.io/distroless/cc-debian12", frozenset({"rustc"})),
    Toolchain("a JDK with Maven", "maven:<version>", _JRE, frozenset({"mvn", "mvnw"}),
              frozenset({"compile", "package", "install", "verify"})),
    Toolchain("a JDK with Gradle", "gradle:<version>", _JRE, frozenset({"gradle", "gradlew"}),
              frozenset({"build", "assemble", "jar", "bootJar", "shadowJar", "installDist", "classes"})),
    Toolchain("a JDK (javac)", "eclipse-temurin:<version>-jdk", _JRE, frozenset({"javac"})),
    Toolchain("the .NET SDK", "mcr.microsoft.com/dotnet/sdk:<version>", "mcr.microsoft.com/dotnet/aspnet:<version>",
              frozenset({"dotnet"}), frozenset({"build", "publish", "msbuild", "pack"})),
    Toolchain("the Go toolchain", "golang:<version>", "gcr.io/distroless/static-debian12", frozenset({"go"}),
              frozenset({"build", "install"})),
    Toolchain("a C/C++ toolchain (make)", "debian:<version> with build-essential", "debian:<version>-slim",
              frozenset({"make", "cmake", "ninja", "gcc", "g++", "cc", "c++", "clang", "clang++"})),
    Toolchain("the Node build tooling (a compiler or bundler) and dev dependencies", "node:<version>",
              _NODE_RUNTIME, frozenset({"tsc", "webpack", "esbuild", "rollup", "swc"})),
    Toolchain("the Node build tooling and dev dependencies", "node:<version>",
              _NODE_RUNTIME, frozenset({"npm", "yarn", "pnpm", "nest", "next", "vite"}),
              frozenset({"build"})),
    Toolchain("the Elixir toolchain (mix)", "elixir:<version>", "debian:<version>-slim", frozenset({"mix"}),
              frozenset({"compile", "release"})),
    Toolchain("the Swift toolchain", "swift:<version>", "swift:<version>-slim", frozenset({"swift"}),
              frozenset({"build"})),
    Toolchain("the Haskell toolchain", "haskell:<version>", "debian:<version>-slim",
              frozenset({"ghc", "cabal", "stack"})),
)  # fmt: skip
"""Compile steps by their tool, for every language including those `LANGUAGES` does not judge: a compile in the
final stage is language-independent evidence of a build whose toolchain ships (hadolint and checkov judge the
Dockerfile, not the language, in the same way)."""


def toolchain_of(words: list[str]) -> Toolchain | None:
    """The toolchain a simple command compiles with, if it compiles."""
    return next((toolchain for toolchain in TOOLCHAINS if toolchain.compiled_by(words)), None)
