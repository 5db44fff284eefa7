"""The render (`harness.manifests`, `deploy.offline.render`) and the diff of two renders (`deploy.offline.diff`):
byte-identical across processes, in the order a deploy applies objects, Secrets valid with placeholders,
diffs per object."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy.offline.diff import Change, ObjectKey, diff_renders, object_changes
from deploy.offline.render import RenderFailed, render_at_ref
from harness.manifests import (
    _DUMPER,
    APPLY_ORDER,
    HELM_INSTALL_ORDER,
    RENDER_LIST,
    SECRET_PLACEHOLDER,
    _dump,
    apply_order_key,
    documents_in_apply_order,
    is_kubernetes,
    render,
    render_to_directory,
    rendered_files,
    to_manifest,
)
from harness.recording import MODELLED_DIGEST_PREFIX, Recording
from harness.stack_config import REPO_ROOT, read_stack_config
from tests.conftest import record

SECRET_TYPE = "kubernetes.io/dockerconfigjson"


def _key(document: dict[str, Any]) -> tuple[str, str, str]:
    metadata = document["metadata"]
    return document["kind"], metadata.get("namespace", ""), metadata["name"]


def _render(out: Path, hash_seed: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "deploy", "render", "staging", "--output-dir", str(out)]
    environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False, env=environment
    )


@pytest.mark.slow
def test_two_renders_in_separate_processes_are_byte_identical(tmp_path: Path) -> None:
    # Registration order differs run to run (the SDK registers through a thread pool); the render must not.
    first, second = _render(tmp_path / "a", "1"), _render(tmp_path / "b", "2")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    renders = [{f.name: f.read_bytes() for f in sorted((tmp_path / run).iterdir())} for run in ("a", "b")]
    assert len(renders[0]) > 25 and renders[0] == renders[1]
    assert any(MODELLED_DIGEST_PREFIX.encode() in document for document in renders[0].values())


def test_libyaml_writes_the_same_bytes_as_the_pure_python_dumper(recordings: dict[str, Recording]) -> None:
    # The render uses libyaml's emitter for speed; it must not change a byte of what the pure-Python one writes.
    assert _DUMPER is yaml.CSafeDumper, "PyYAML without libyaml: the render falls back to the slow pure-Python dumper"
    for recording in recordings.values():
        documents = documents_in_apply_order(recording)
        assert _dump(documents) == _dump(documents, yaml.SafeDumper)


def test_render_does_not_depend_on_registration_order(recording: Recording) -> None:
    shuffled = list(recording.resources)
    random.Random(12).shuffle(shuffled)
    for resources in (shuffled, list(reversed(recording.resources))):
        assert render(dataclasses.replace(recording, resources=resources)) == render(recording)


def test_apply_order_is_helms_install_order_with_our_deploy_exception() -> None:
    moved = ("StatefulSet", "Job")
    assert [k for k in APPLY_ORDER if k not in moved] == [k for k in HELM_INSTALL_ORDER if k not in moved]
    deployment = APPLY_ORDER.index("Deployment")
    assert APPLY_ORDER.index("StatefulSet") < APPLY_ORDER.index("Job") < deployment
    assert APPLY_ORDER.index("HorizontalPodAutoscaler") == deployment + 1


def test_documents_follow_the_apply_order(recording: Recording) -> None:
    documents = documents_in_apply_order(recording)
    kinds = [d["kind"] for d in documents]
    assert kinds[0] == "Namespace"
    assert max(i for i, k in enumerate(kinds) if k == "StatefulSet") < kinds.index("Job")
    assert kinds.index("Job") < min(i for i, k in enumerate(kinds) if k == "Deployment")
    assert kinds[-2:] == ["PodMonitor", "PodMonitor"], "kinds Helm does not know come last"
    ranks = [APPLY_ORDER.index(k) if k in APPLY_ORDER else len(APPLY_ORDER) for k in kinds]
    assert ranks == sorted(ranks)
    for kind in set(kinds):
        names = [d["metadata"]["name"] for d in documents if d["kind"] == kind]
        assert names == sorted(names), f"{kind} objects are not ordered by name"


def test_unknown_kinds_come_last_alphabetically_and_hpas_after_deployments() -> None:
    def document(kind: str, name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}

    documents = [
        document("PodMonitor", "a"),
        document("HorizontalPodAutoscaler", "web"),
        document("Deployment", "web"),
        document("Alertmanager", "z"),
        document("Deployment", "api"),
        document("Job", "migrate"),
        document("Namespace", "ns"),
    ]
    ordered = [(d["kind"], d["metadata"]["name"]) for d in sorted(documents, key=apply_order_key)]
    assert ordered == [
        ("Namespace", "ns"),
        ("Job", "migrate"),
        ("Deployment", "api"),
        ("Deployment", "web"),
        ("HorizontalPodAutoscaler", "web"),
        ("Alertmanager", "z"),
        ("PodMonitor", "a"),
    ]


def test_every_object_comes_after_the_objects_of_other_kinds_it_depends_on(recording: Recording) -> None:
    # Within a kind the order is by name, as Helm's; across kinds it must match the deploy's dependency graph.
    kubernetes = {r.urn: r for r in recording if is_kubernetes(r)}
    position = {_key(d): i for i, d in enumerate(documents_in_apply_order(recording))}
    for resource in kubernetes.values():
        manifest = to_manifest(resource)
        for urn in resource.dependencies:
            if urn in kubernetes and kubernetes[urn].inputs["kind"] != manifest["kind"]:
                dependency = _key(to_manifest(kubernetes[urn]))
                assert position[dependency] < position[_key(manifest)], f"{resource.urn} before {urn}"


def _secret_errors(secret: dict[str, Any]) -> list[str]:
    """kubernetes/kubernetes `pkg/apis/core/validation/validation.go` `ValidateSecret`, on the data the API server
    validates: `stringData` merged over `data` (`pkg/apis/core/v1/conversion.go` `Convert_v1_Secret_To_core_Secret`)."""
    data = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
    data.update({key: value.encode() for key, value in (secret.get("stringData") or {}).items()})
    secret_type = secret.get("type", "Opaque")
    json_key = {"kubernetes.io/dockercfg": ".dockercfg", "kubernetes.io/dockerconfigjson": ".dockerconfigjson"}
    errors = []
    if secret_type in json_key:
        key = json_key[secret_type]
        try:
            if not isinstance(json.loads(data[key]), dict):
                errors.append(f"data[{key}]: not a JSON object")
        except KeyError:
            errors.append(f"data[{key}]: Required value")
        except ValueError as error:
            errors.append(f"data[{key}]: {error}")
    if secret_type == "kubernetes.io/basic-auth" and not data.keys() & {"username", "password"}:
        errors.append("data[username], data[password]: Required value")
    if secret_type == "kubernetes.io/ssh-auth" and not data.get("ssh-privatekey"):
        errors.append("data[ssh-privatekey]: Required value")
    if secret_type == "kubernetes.io/tls":
        errors += [f"data[{key}]: Required value" for key in ("tls.crt", "tls.key") if key not in data]
    return errors


def test_the_secret_check_refuses_what_the_api_server_refuses() -> None:
    old_redaction = {"type": SECRET_TYPE, "stringData": {".dockerconfigjson": "[secret]"}}
    assert [error.split(":")[0] for error in _secret_errors(old_redaction)] == ["data[.dockerconfigjson]"]
    assert _secret_errors({"type": "kubernetes.io/tls", "data": {"tls.crt": ""}}) == ["data[tls.key]: Required value"]


def _secret_leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _secret_leaves(v)]
    return [value] if isinstance(value, str) else []


def test_every_secret_validates_and_holds_placeholders_only(recording: Recording) -> None:
    text = render(recording)
    secrets = [d for d in yaml.safe_load_all(text) if d["kind"] == "Secret"]
    assert {s.get("type") for s in secrets} >= {"Opaque", SECRET_TYPE}
    for secret in secrets:
        name = secret["metadata"]["name"]
        kubernetes_validate.validate(secret, "1.30.0", strict=True)
        assert _secret_errors(secret) == [], name
        for value in secret["stringData"].values():
            assert SECRET_PLACEHOLDER in value, name
    real_values = [
        leaf
        for resource in recording.of_type("kubernetes:core/v1:Secret")
        for leaf in _secret_leaves(resource.inputs["stringData"])
    ]
    assert real_values and not [value for value in real_values if value in text], "a real secret value was rendered"


def test_secret_data_gets_base64_placeholders_valid_for_the_type(recording: Recording) -> None:
    pull_secret = next(r for r in recording.of_type("kubernetes:core/v1:Secret") if r.inputs["type"] == SECRET_TYPE)
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in pull_secret.inputs["stringData"].items()}
    inputs = {k: v for k, v in pull_secret.inputs.items() if k != "stringData"} | {"data": encoded}
    as_data = dataclasses.replace(pull_secret, inputs=inputs, secret_paths=frozenset({"data"}))
    manifest = to_manifest(as_data)
    kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    assert _secret_errors(manifest) == []
    assert SECRET_PLACEHOLDER in base64.b64decode(manifest["data"][".dockerconfigjson"]).decode()


def test_the_in_stack_image_has_a_visibly_modelled_digest(recordings: dict[str, Recording]) -> None:
    deployments = [d for d in documents_in_apply_order(recordings["staging"]) if d["kind"] == "Deployment"]
    for deployment in deployments:
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image.split("@", 1)[1].startswith(MODELLED_DIGEST_PREFIX), image
        assert len(image.split("@sha256:", 1)[1]) == 64, "still a well-formed digest"


def test_render_to_directory_writes_one_file_per_object_in_apply_order(recording: Recording, tmp_path: Path) -> None:
    (tmp_path / "README").write_text("kept")
    written = render_to_directory(recording, tmp_path)
    documents = documents_in_apply_order(recording)
    assert sorted(tmp_path.iterdir()) == sorted([*written, tmp_path / "README", tmp_path / RENDER_LIST])
    assert rendered_files(tmp_path) == written
    assert [p.name for p in written] == sorted(p.name for p in written)
    for path, document in zip(written, documents, strict=True):
        assert path.name.endswith(f"-{document['kind'].lower()}-{document['metadata']['name']}.yaml")
        assert yaml.safe_load(path.read_text()) == document
    assert render_to_directory(recording, tmp_path) == written


@pytest.mark.slow
def test_diff_of_a_changed_replica_count_shows_exactly_that_field() -> None:
    _, config = read_stack_config("staging")
    workloads = json.loads(json.dumps(config["shipsafe:workloads"]))
    replicas = workloads["web"]["replicas"]
    workloads["web"]["replicas"] = replicas + 1
    before = render(record("staging"))
    after = render(record("staging", **{"shipsafe:workloads": workloads}))
    changes = object_changes(before, after)
    assert [(c.key.kind, c.key.name, c.change) for c in changes] == [("Deployment", "notes-web", Change.CHANGED)]
    changed_lines = [
        line for line in changes[0].diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed_lines == [f"-  replicas: {replicas}", f"+  replicas: {replicas + 1}"]
    assert diff_renders(before, after).startswith("Deployment notes-staging/notes-web changed:\n--- a/")
    assert diff_renders(before, before) == ""


def test_diff_names_added_and_removed_objects(recording: Recording) -> None:
    documents = documents_in_apply_order(recording)
    namespace, config_map = documents[0], next(d for d in documents if d["kind"] == "ConfigMap")
    old = yaml.safe_dump_all([d for d in documents if d is not config_map])
    new = yaml.safe_dump_all([d for d in documents if d is not namespace])
    changes = object_changes(old, new)
    assert [(c.key, c.change) for c in changes] == [
        (ObjectKey("Namespace", "", namespace["metadata"]["name"]), Change.REMOVED),
        (ObjectKey(*_key(config_map)), Change.ADDED),
    ]
    removed_body = changes[0].diff.splitlines()[3:]
    assert removed_body and all(line.startswith("-") for line in removed_body)


def test_diff_refuses_a_render_with_an_object_twice(recording: Recording) -> None:
    text = render(recording)
    with pytest.raises(ValueError, match="the new render holds Namespace notes-"):
        object_changes(text, text + "---\n" + text.split("---\n", 1)[0])


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.slow
def test_render_at_a_git_ref_uses_the_program_and_release_of_that_commit() -> None:
    documents = list(yaml.safe_load_all(render_at_ref("staging", "HEAD")))
    assert documents[0]["kind"] == "Namespace"
    job = next(d for d in documents if d["kind"] == "Job")
    assert job["metadata"]["name"] == f"notes-migrate-{_head()[:12]}", "the release is the commit, never -dirty"
    with pytest.raises(RenderFailed, match="git ref 'no-such-ref' does not name a commit"):
        render_at_ref("staging", "no-such-ref")
