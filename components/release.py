"""Which release this deploy is: the git SHA from config (CI passes it) or from the working tree."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from components.settings import ConfigError, ImageSource, Settings


@dataclass(frozen=True)
class Release:
    sha: str
    """Full or short git SHA, with a `-dirty` suffix when the tree had uncommitted changes."""

    @property
    def dirty(self) -> bool:
        return self.sha.endswith("-dirty")

    @property
    def short(self) -> str:
        """12 characters for object names: unique per release and well within name limits."""
        return self.sha.removesuffix("-dirty")[:12] + ("-dirty" if self.dirty else "")


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def working_tree_sha(repo: Path) -> str:
    try:
        sha = _git("rev-parse", "HEAD", cwd=repo)
        # Stack files change with `pulumi config set`; they are deploy settings, not part of the image.
        dirty = bool(_git("status", "--porcelain", "--", ".", ":(exclude)Pulumi.*.yaml", cwd=repo))
    except (OSError, subprocess.CalledProcessError) as error:
        raise ConfigError(
            [
                f"shipsafe:gitSha is not set and `git rev-parse HEAD` failed in {repo} ({error}); "
                "set shipsafe:gitSha to the commit being deployed"
            ]
        ) from None
    return f"{sha}-dirty" if dirty else sha


def resolve_release(settings: Settings, project_dir: Path) -> Release:
    """The release is the commit of the code the image is built from: the project's, or for a build context
    outside the project (the app's own repository checked out beside it) that repository's."""
    if settings.release_sha:
        return Release(settings.release_sha)
    context = (project_dir / settings.app.build_context).resolve()
    builds_elsewhere = settings.image_source is ImageSource.BUILD and not context.is_relative_to(project_dir.resolve())
    return Release(working_tree_sha(context if builds_elsewhere else project_dir))
