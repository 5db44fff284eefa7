"""`mirror`: third-party images copied into the project registry and pinned by digest in the stack files.

The `image` tests copy stand-in images (Docker Hub is unreachable here) into the real local `docker-registry` with
the real Docker engine and check the registry serves the digests written; the others edit copies of the committed
stack files with a copier that records instead of pushing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from components.settings import BackingService, RegistrySettings
from deploy.errors import ShipsafeError
from deploy.mirror import Action, mirror_images, set_config_value
from harness.analyzer import PolicyPackProcess, format_report, load_policy_config
from harness.recording import Recording
from harness.runtime import run_stack
from harness.stack_config import REPO_ROOT
from tests.app.images import build, ensure_stand_in_base
from tests.conftest import STACKS
from tests.support.services import docker

THIRD_PARTY_DIGEST = "12f-build-third-party-digest"
DEV_PROD_PARITY = "12f-parity-backing-versions"
POSTGRES, REDIS, REGISTRY = "shipsafe:postgres", "shipsafe:redis", "shipsafe:registry"
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


def config_of(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text())["config"])


def image_of(path: Path, section: str) -> str:
    return str(config_of(path)[section]["image"])


@dataclass
class RecordingCopier:
    """Stands in for docker: a digest derived from the copy, and every call remembered."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def copy(self, source: str, destination: str) -> str:
        self.calls.append(("copy", destination))
        return "sha256:" + hashlib.sha256(destination.encode()).hexdigest()

    def resolve(self, source: str) -> str:
        self.calls.append(("resolve", source))
        return "sha256:" + hashlib.sha256(source.encode()).hexdigest()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the committed stack files."""
    for stack in STACKS:
        shutil.copy(REPO_ROOT / f"Pulumi.{stack}.yaml", tmp_path)
    return tmp_path


# ── editing the stack file ───────────────────────────────────────────────────────────────────────────────────


def test_setting_a_value_changes_that_value_only() -> None:
    original = (REPO_ROOT / "Pulumi.prod.yaml").read_text()
    pinned = "registry.example.com/shipsafe/mirror/redis:7.0.15-bookworm@sha256:" + "1" * 64

    edited = set_config_value(original, REDIS, "image", pinned)

    changed = [(old, new) for old, new in zip(original.splitlines(), edited.splitlines(), strict=True) if old != new]
    assert changed == [(f"    image: {image_of(REPO_ROOT / 'Pulumi.prod.yaml', REDIS)}", f"    image: {pinned}")]
    assert yaml.safe_load(edited)["config"][REDIS]["image"] == pinned
    assert yaml.safe_load(edited)["config"][POSTGRES] == yaml.safe_load(original)["config"][POSTGRES]


def test_a_quoted_value_stays_quoted_and_a_missing_one_is_added_to_its_block() -> None:
    text = 'config:\n  s:registry:  # the registry\n    mode: in-cluster\n    server: "r.test"\n  s:other: 1\n'

    quoted = set_config_value(text, "s:registry", "server", "r2.test")
    added = set_config_value(text, "s:registry", "image", "r.test/registry:2.8.3@sha256:" + "2" * 64)

    assert quoted == text.replace('"r.test"', '"r2.test"')
    assert added == text.replace("    mode:", "    image: r.test/registry:2.8.3@sha256:" + "2" * 64 + "\n    mode:")
    assert yaml.safe_load(added)["config"]["s:registry"]["mode"] == "in-cluster"


def test_a_section_that_is_not_a_mapping_is_refused_by_name() -> None:
    with pytest.raises(ShipsafeError, match="no mapping 's:redis'"):
        set_config_value("config:\n  s:redis: redis\n", "s:redis", "image", "x")


# ── planning and pinning (no docker) ────────────────────────────────────────────────────────────────────────────


def test_dry_run_plans_a_copy_next_to_the_app_repository_and_changes_nothing(project: Path) -> None:
    before = {path.name: path.read_bytes() for path in project.iterdir()}
    copier = RecordingCopier()

    steps = mirror_images(project, ["prod"], dry_run=True, copier=copier)

    registry = RegistrySettings.model_validate(config_of(project / "Pulumi.prod.yaml")[REGISTRY])
    parent = registry.repository.rpartition("/")[0]
    by_key = {step.key: step for step in steps}
    for section, name in ((POSTGRES, "postgres"), (REDIS, "redis")):
        tag = image_of(project / "Pulumi.prod.yaml", section).rsplit(":", 1)[1]
        step = by_key[f"{section}.image"]
        assert (step.action, step.destination, step.pinned) == (
            Action.COPY,
            f"{registry.server}/{parent}/mirror/{name}:{tag}",
            None,
        )
    assert by_key[f"{REGISTRY}.image"].action is Action.SKIP  # an external registry runs no registry image
    assert copier.calls == []
    assert {path.name: path.read_bytes() for path in project.iterdir()} == before


def test_a_service_the_app_does_not_have_has_no_image_to_mirror(project: Path) -> None:
    path = project / "Pulumi.prod.yaml"
    config = yaml.safe_load(path.read_text())
    config["config"][POSTGRES] = {"mode": "none"}  # written out
    del config["config"][REDIS]  # left out: mode none by default
    path.write_text(yaml.safe_dump(config))
    copier = RecordingCopier()

    steps = mirror_images(project, ["prod"], dry_run=True, copier=copier)

    assert [step.key for step in steps] == [f"{REGISTRY}.image"], steps
    assert copier.calls == []


def test_pinning_writes_digests_the_settings_model_accepts_and_a_second_run_changes_nothing(project: Path) -> None:
    copier = RecordingCopier()

    first = mirror_images(project, copier=copier)
    after_first = {path.name: path.read_bytes() for path in project.iterdir()}
    second = mirror_images(project, copier=RecordingCopier())

    assert {step.key for step in first if step.changed} == {f"{POSTGRES}.image", f"{REDIS}.image"}
    # Both stacks share each upstream image: copied once per run.
    assert sorted(copier.calls) == sorted({call for call in copier.calls})
    for stack in STACKS:
        config = config_of(project / f"Pulumi.{stack}.yaml")
        for section in (POSTGRES, REDIS):
            image = BackingService.model_validate(config[section]).image or ""
            assert "/mirror/" in image and "@sha256:" in image, image
    assert not any(step.changed for step in second)
    assert {path.name: path.read_bytes() for path in project.iterdir()} == after_first


def test_an_unknown_stack_and_a_bad_prefix_are_refused_by_name(project: Path) -> None:
    known = re.escape(", ".join(STACKS))
    with pytest.raises(ShipsafeError, match=rf"no stack file Pulumi.qa.yaml \(stacks with a file: {known}\)"):
        mirror_images(project, ["qa"], dry_run=True)
    with pytest.raises(ShipsafeError, match="--prefix 'Mirror/' must be a registry path"):
        mirror_images(project, ["prod"], prefix="Mirror/", dry_run=True)


def test_the_command_prints_the_plan_of_the_selected_stack(deploy_ctx, run_cli) -> None:
    for stack in STACKS:
        shutil.copy(REPO_ROOT / f"Pulumi.{stack}.yaml", deploy_ctx.project_dir)
    before = (deploy_ctx.project_dir / "Pulumi.prod.yaml").read_bytes()

    result = run_cli("mirror", "--stack", "prod", "--dry-run")

    assert result.exit_code == 0, result.output
    assert f"prod {POSTGRES}.image: would copy docker.io/library/postgres:" in result.output
    assert "staging" not in result.output
    assert (deploy_ctx.project_dir / "Pulumi.prod.yaml").read_bytes() == before


@pytest.mark.slow
def test_a_mirrored_prod_stack_passes_the_third_party_digest_policy_at_mandatory_level(
    project: Path, recordings: dict[str, Recording], tmp_path: Path
) -> None:
    mirror_images(project, ["prod"], copier=RecordingCopier())
    mirrored_config = config_of(project / "Pulumi.prod.yaml")
    # What prod.json says once prod is mirrored (docs/mirror.md): the digest rule mandatory like the rest of prod,
    # and the dev/prod parity pins naming the mirrored references.
    config = load_policy_config(REPO_ROOT / "policy" / "config" / "prod.json")
    config[THIRD_PARTY_DIGEST] = {**config.get(THIRD_PARTY_DIGEST, {}), "enforcementLevel": "mandatory"}
    parity = {
        "database": image_of(project / "Pulumi.prod.yaml", POSTGRES),
        "cache": image_of(project / "Pulumi.prod.yaml", REDIS),
    }
    config[DEV_PROD_PARITY] = {**config.get(DEV_PROD_PARITY, {}), "images": parity}
    mirrored = run_stack("prod", config_overrides={key: mirrored_config[key] for key in (POSTGRES, REDIS)})

    with PolicyPackProcess(project="shipsafe", stack="prod") as pack:
        pack.configure(config)
        unmirrored_report = pack.analyze(recordings["prod"])
        mirrored_report = pack.analyze(mirrored)

    unpinned = {v.resource for v in unmirrored_report.mandatory_violations if v.policy == THIRD_PARTY_DIGEST}
    assert unpinned == {"notes-postgres-statefulset", "notes-redis-statefulset"}, format_report(unmirrored_report)
    assert not mirrored_report.mandatory_violations, format_report(mirrored_report)


# ── for real: the Docker engine and the local registry ────────────────────────────────────────────────────────


@dataclass(frozen=True)
class StandIns:
    postgres: str
    redis: str


@pytest.fixture(scope="module")
def stand_ins(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIns]:
    """Local images under upstream-like names nobody can pull, distinct per role (a label each)."""
    base = ensure_stand_in_base()
    context = tmp_path_factory.mktemp("stand-in")
    names = StandIns(
        postgres="stand-in.invalid/library/postgres:15.18-bookworm",
        redis="stand-in.invalid/library/redis:7.0.15-bookworm",
    )
    for role, tag in (("postgres", names.postgres), ("redis", names.redis)):
        (context / "Dockerfile").write_text(f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}} AS production\nLABEL role={role}\n")
        build(tag, context=context, base_image=base)
    yield names
    docker("rmi", "--no-prune", names.postgres, names.redis, check=False)


@pytest.fixture
def local_stack(project: Path, local_registry: str, stand_ins: StandIns) -> Iterator[Path]:
    """prod's stack file pointed at the local registry (a fresh namespace per test) and the stand-ins."""
    path = project / "Pulumi.prod.yaml"
    text = set_config_value(path.read_text(), REGISTRY, "server", local_registry)
    text = set_config_value(text, REGISTRY, "repository", f"t{uuid.uuid4().hex[:12]}/notes")
    text = set_config_value(text, POSTGRES, "image", stand_ins.postgres)
    path.write_text(set_config_value(text, REDIS, "image", stand_ins.redis))
    yield path
    for section in (POSTGRES, REDIS):
        docker("rmi", "--no-prune", image_of(path, section).split("@")[0], check=False)


def served_digest(reference: str) -> str | None:
    """The registry's `Docker-Content-Digest` for a manifest (by tag or digest), as `curl -I` shows it."""
    repository, _, digest = reference.partition("@")
    host, _, path = repository.partition("/")
    name, _, tag = path.rpartition(":")
    response = httpx.head(f"http://{host}/v2/{name}/manifests/{digest or tag}", headers={"Accept": MANIFEST_TYPES})
    return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None


@pytest.mark.image
def test_mirror_copies_stand_ins_into_the_registry_and_pins_the_digests_it_serves(local_stack: Path) -> None:
    steps = mirror_images(local_stack.parent, ["prod"])

    for section in (POSTGRES, REDIS):
        pinned = image_of(local_stack, section)
        repository_and_tag, _, digest = pinned.partition("@")
        assert served_digest(pinned) == digest, f"the registry does not serve {pinned}"
        assert served_digest(repository_and_tag) == digest, f"{repository_and_tag} points elsewhere"
    assert {step.key for step in steps if step.changed} == {f"{POSTGRES}.image", f"{REDIS}.image"}
    assert image_of(local_stack, POSTGRES).split("@")[1] != image_of(local_stack, REDIS).split("@")[1]


@pytest.mark.image
def test_a_second_run_and_a_dry_run_change_nothing(local_stack: Path) -> None:
    upstream = image_of(local_stack, POSTGRES)
    unmirrored = local_stack.read_bytes()

    planned = mirror_images(local_stack.parent, ["prod"], dry_run=True)

    assert local_stack.read_bytes() == unmirrored
    destination = next(s.destination for s in planned if s.key == f"{POSTGRES}.image")
    assert destination is not None and served_digest(destination) is None, "a dry run pushed"
    assert upstream == image_of(local_stack, POSTGRES)

    mirror_images(local_stack.parent, ["prod"])
    mirrored = local_stack.read_bytes()
    again = mirror_images(local_stack.parent, ["prod"])

    assert local_stack.read_bytes() == mirrored
    assert [step for step in again if step.changed] == []
    assert all(served_digest(s.pinned) for s in again if s.pinned), "the second run's pins are not served"


@pytest.mark.image
def test_an_in_cluster_registry_image_is_pinned_where_it_is(
    project: Path, local_registry: str, stand_ins: StandIns
) -> None:
    # The in-cluster registry cannot serve its own image, so it is pinned at its source: here the local registry.
    source = f"{local_registry}/t{uuid.uuid4().hex[:12]}/registry:2.8.3"
    docker("tag", stand_ins.redis, source)
    docker("push", source)
    path = project / "Pulumi.prod.yaml"
    text = path.read_text()
    text = set_config_value(text, REGISTRY, "mode", "in-cluster")
    text = set_config_value(text, REGISTRY, "server", "registry.notes.test")
    text = set_config_value(text, REGISTRY, "image", source)
    document = yaml.safe_load(text)
    for section in (POSTGRES, REDIS):  # replaced whole: an external server takes none of the in-cluster keys
        version = document["config"][section]["version"]
        document["config"][section] = {"mode": "external", "version": version, "externalCidr": "10.0.0.0/24"}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        steps = mirror_images(project, ["prod"])
    finally:
        docker("rmi", "--no-prune", source, check=False)

    pinned = image_of(path, REGISTRY)
    assert pinned.startswith(source + "@sha256:")
    assert served_digest(pinned) == pinned.partition("@")[2]
    assert [(s.key, s.action) for s in steps if s.changed] == [(f"{REGISTRY}.image", Action.PIN)]
    assert [s for s in steps if not s.changed] == [], "an external server has no image to mirror"
