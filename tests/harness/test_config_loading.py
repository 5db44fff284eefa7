"""Stack config is read as the Pulumi CLI reads it, and what the CLI would refuse is refused: each mistake a new
user made editing `Pulumi.staging.yaml` stops the preview with one message naming the key, nothing registered."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.config_keys import CONFIG_NAMESPACE
from components.settings import ConfigError, SettingsModel, load_settings, settings_from_config
from deploy.docs import configuration as config_docs
from deploy.exit_codes import ExitCode
from deploy.offline import preview
from harness.runtime import ProgramFailed, run_stack
from harness.stack_config import (
    REPO_ROOT,
    StackFileError,
    coerce,
    parse_path,
    read_stack_config,
    read_stack_file,
    set_path,
)
from tests.conftest import STAGING_SHA

STAGING = (REPO_ROOT / "Pulumi.staging.yaml").read_text()


def _project(tmp_path: Path, stack_text: str, project_extra: str = "") -> Path:
    """A project directory running this repository's program with the given stack file."""
    (tmp_path / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text() + project_extra)
    (tmp_path / "Pulumi.staging.yaml").write_text(stack_text)
    for shared in ("__main__.py", "components"):
        (tmp_path / shared).symlink_to(REPO_ROOT / shared)
    return tmp_path


def _staging_with(tmp_path: Path, extra: str = "", project_extra: str = "") -> Path:
    """Staging's stack file plus `extra` lines appended under `config:` (staging ends inside that block)."""
    return _project(tmp_path, f"{STAGING}  {CONFIG_NAMESPACE}:gitSha: {STAGING_SHA}\n{extra}", project_extra)


def _refused(project_dir: Path, **overrides: Any) -> str:
    """The program's config error: nothing was registered before it."""
    with pytest.raises(ProgramFailed) as failure:
        run_stack("staging", project_dir=project_dir, config_overrides=overrides)
    assert isinstance(failure.value.error, ConfigError), failure.value.error
    assert failure.value.recording.resources == [], "resources were registered before validation failed"
    return str(failure.value.error)


def _file_refused(project_dir: Path) -> str:
    with pytest.raises(StackFileError) as failure:
        run_stack("staging", project_dir=project_dir)
    message = str(failure.value)
    assert "\n" not in message, message
    return message


def test_the_temp_project_runs_as_the_real_one(tmp_path: Path) -> None:
    recording = run_stack("staging", project_dir=_staging_with(tmp_path))
    assert recording.of_type("kubernetes:apps/v1:Deployment")


def test_an_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    message = _refused(_staging_with(tmp_path, "  shipsafe:replicas: 3\n"))
    assert "shipsafe:replicas is not a known setting; did you mean shipsafe:workloads.<name>.replicas?" in message


def test_a_misspelled_section_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    extra = "  shipsafe:rolout:\n    maxSurge: 3\n    terminationGracePeriodSeconds: 60\n"
    assert "shipsafe:rolout is not a known setting; did you mean shipsafe:rollout?" in _refused(
        _staging_with(tmp_path, extra)
    )


def test_a_misspelled_nested_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    text = STAGING.replace("    maxSurge: 1\n", "    maxSurg: 2\n")
    message = _refused(_project(tmp_path, text), **{"shipsafe:gitSha": STAGING_SHA})
    assert "shipsafe:rollout.maxSurg is not a known setting; did you mean shipsafe:rollout.maxSurge?" in message


def test_a_workload_listed_twice_is_refused_with_file_and_line(tmp_path: Path) -> None:
    text = STAGING.replace("    worker:\n", "    web:\n")
    line = text.splitlines().index("    web:", text.splitlines().index("    web:") + 1) + 1
    message = _file_refused(_project(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'Pulumi.staging.yaml'}:{line}:5: duplicate key 'web'"), message
    assert "first defined at line" in message


def test_a_duplicate_key_in_the_project_file_is_refused(tmp_path: Path) -> None:
    message = _file_refused(_staging_with(tmp_path, project_extra="name: other\n"))
    assert "Pulumi.yaml:" in message and "duplicate key 'name'" in message


def test_a_plain_text_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    message = _refused(_staging_with(tmp_path, "  shipsafe:registryPassword: hunter2\n"))
    assert "shipsafe:registryPassword is written in plain text: it must be a secret" in message
    assert "hunter2" not in message


def test_a_secure_secret_is_accepted_as_a_placeholder(tmp_path: Path) -> None:
    recording = run_stack(
        "staging", project_dir=_staging_with(tmp_path, "  shipsafe:registryPassword:\n    secure: v1:abc\n")
    )
    assert recording.placeholder_secrets == ["shipsafe:registryPassword"]


def test_a_yaml_syntax_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    text = STAGING.replace("    maxSurge: 1\n", "    maxSurge: [1\n")
    project = _project(tmp_path, text)
    message = _file_refused(project)
    assert message.startswith(f"{tmp_path / 'Pulumi.staging.yaml'}:"), message
    line, column = message.split(":")[1:3]
    assert line.isdigit() and column.isdigit()
    report = preview.offline_preview("staging", {}, project_dir=project, policy=False)
    assert report.exit_code == ExitCode.CONFIG_ERROR
    assert report.error == preview.Refusal(message, [message])


def test_a_key_without_a_namespace_is_refused(tmp_path: Path) -> None:
    message = _file_refused(_staging_with(tmp_path, "  replicas: 3\n"))
    assert message.startswith(f"{tmp_path / 'Pulumi.staging.yaml'}:"), message
    assert "could not parse 'replicas' as a configuration key" in message


def test_other_namespaces_and_the_stack_files_own_keys_are_left_alone(tmp_path: Path) -> None:
    text = f"encryptionsalt: v1:abc\nsecretsprovider: passphrase\nenvironment: [shared]\n{STAGING}"
    project = _project(tmp_path, f"{text}  kubernetes:context: kind-shipsafe\n  shipsafe:gitSha: {STAGING_SHA}\n")
    assert run_stack("staging", project_dir=project).of_type("kubernetes:apps/v1:Deployment")


def test_the_old_config_module_form_of_a_key_is_the_same_key(tmp_path: Path) -> None:
    _, config = read_stack_config("staging", _staging_with(tmp_path, "  shipsafe:config:rollback: true\n"))
    assert config["shipsafe:rollback"] == "true"


def test_top_level_scalars_keep_their_text(tmp_path: Path) -> None:
    # The CLI keeps a top-level value as written; YAML 1.1 would read `0123` as 83 and `yes` as true.
    _, config = read_stack_config("staging", _staging_with(tmp_path, "  other:sha: 0123\n  other:flag: yes\n"))
    assert (config["other:sha"], config["other:flag"]) == ("0123", "yes")


def test_project_config_applies_where_the_stack_is_silent_and_never_merges(tmp_path: Path) -> None:
    text = STAGING.replace("  shipsafe:rollback: false\n", "")
    project_extra = "config:\n  rollback: true\n  shipsafe:rollout:\n    default: {maxSurge: 5}\n"
    _, config = read_stack_config("staging", _project(tmp_path, text, project_extra))
    assert config["shipsafe:rollback"] is True  # the project default, handed over as "true"
    assert config["shipsafe:rollout"]["maxSurge"] == 1, "a stack value replaces the project's whole value"


def test_project_config_is_checked_with_the_same_rules(tmp_path: Path) -> None:
    assert "shipsafe:replcas is not a known setting" in _refused(
        _staging_with(tmp_path, project_extra="config:\n  replcas: 3\n")
    )


def test_a_project_config_entry_the_cli_refuses_is_refused(tmp_path: Path) -> None:
    message = _file_refused(_staging_with(tmp_path, project_extra="config:\n  kubernetes:context: {default: kind}\n"))
    assert "should not define a default value" in message


def test_a_secret_declared_by_the_project_must_be_encrypted(tmp_path: Path) -> None:
    project_extra = "config:\n  registryPassword:\n    type: string\n    secret: true\n"
    message = _file_refused(_staging_with(tmp_path, "  shipsafe:registryPassword: hunter2\n", project_extra))
    assert "'shipsafe:registryPassword' must be encrypted as it's secret" in message


def test_the_program_checks_the_config_the_engine_hands_it(monkeypatch) -> None:
    """Under the CLI the language host passes config through PULUMI_CONFIG (pulumi-language-python-exec)."""
    _, config = read_stack_config("staging")
    engine = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    engine |= {"shipsafe:gitSha": STAGING_SHA, "shipsafe:registryPassword": "plain", "shipsafe:rolout": "{}"}
    pulumi.runtime.set_all_config({}, [])
    monkeypatch.setitem(os.environ, "PULUMI_CONFIG", json.dumps(engine))
    monkeypatch.setitem(os.environ, "PULUMI_CONFIG_SECRET_KEYS", "[]")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert error.value.problems[0].startswith("shipsafe:registryPassword is written in plain text")
    assert error.value.problems[1].startswith("shipsafe:rolout is not a known setting")
    monkeypatch.delenv("PULUMI_CONFIG")
    engine.pop("shipsafe:rolout")
    pulumi.runtime.set_all_config(engine, ["shipsafe:registryPassword"])
    assert load_settings().rollout.max_surge == 1


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("rollout.maxSurge", "2", {"shipsafe:rollout": {"maxSurge": 2, "minReadySeconds": 10}}),
        ("workloads.web.replicas", "3", {"shipsafe:workloads": {"web": {"replicas": 3}}}),
        ("app.publicPaths[1]", "/api", {"shipsafe:app": {"publicPaths": ["/notes", "/api"]}}),
        ("app.publicPaths[2]", "/more", {"shipsafe:app": {"publicPaths": ["/notes", "/healthz", "/more"]}}),
        ('app["logLevel"]', "true", {"shipsafe:app": {"logLevel": True}}),
        ("gitSha", "0123456", {"shipsafe:gitSha": "0123456"}),
        ("rollback", "true", {"shipsafe:rollback": "true"}),  # top level: always a string
        ("kubernetes:context", "kind", {"kubernetes:context": "kind"}),
        ("new.thing", "x", {"shipsafe:new": {"thing": "x"}}),
    ],
)
def test_set_path_follows_pulumi_config_set_path(key: str, value: str, expected: dict[str, Any]) -> None:
    config: dict[str, Any] = {
        "shipsafe:rollout": {"maxSurge": 1, "minReadySeconds": 10},
        "shipsafe:workloads": {"web": {"replicas": 2}},
        "shipsafe:app": {"publicPaths": ["/notes", "/healthz"]},
    }
    changed = set_path(config, "shipsafe", key, value)
    assert {changed} == set(expected)
    assert _contains(config, expected), config[changed]


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return all(_contains(actual[k], v) for k, v in expected.items())
    return actual == expected


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("app.publicPaths[5]", "array index out of range"),
        ("rollout.maxSurge.deeper", "expected a map"),
        ("rollout..maxSurge", "invalid config key path"),
        ("a:b:c.d", "could not parse"),
    ],
)
def test_set_path_refuses_what_the_cli_refuses(key: str, error: str) -> None:
    config: dict[str, Any] = {"shipsafe:rollout": {"maxSurge": 1}, "shipsafe:app": {"publicPaths": ["/"]}}
    with pytest.raises(StackFileError, match=error):
        set_path(config, "shipsafe", key, "1")


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("false", False), ("42", 42), ("-3", -3), ("0", 0), ("007", "007"), ("0.5", "0.5"), ("x", "x")],
)
def test_path_values_are_coerced_like_the_cli(text: str, value: Any) -> None:
    assert coerce(text) == value and type(coerce(text)) is type(value)


def test_quoted_path_segments_may_hold_dots() -> None:
    assert parse_path('workloads["a.b"].replicas') == ["workloads", "a.b", "replicas"]


def test_the_config_reference_is_generated_from_the_model() -> None:
    reference = config_docs.render_reference()
    assert "| `rollout.maxSurge` | integer ≥ 1 | `1` | Extra pods a rolling update may start" in reference
    assert "`registryPassword`" in reference


def test_field_docstrings_are_read_as_pydantic_reads_them() -> None:
    # The settings leave `use_attribute_docstrings` off (it parses the source at every import); the reference reads
    # the docstrings itself and must find exactly what pydantic's own reader finds, for every model.
    from pydantic._internal._docs_extraction import extract_docstrings_from_cls

    for model in config_docs.model_classes(SettingsModel):
        assert config_docs.attribute_docstrings(model) == extract_docstrings_from_cls(model, use_inspect=True), model


def test_the_config_reference_is_rewritten_when_it_drifts() -> None:
    stale = config_docs.render_reference().replace("maxSurge", "maxSurges")
    assert config_docs.page_text(stale) == config_docs.render_reference() != stale


def test_the_readme_links_the_reference_instead_of_keeping_a_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Config reference", 1)[1].split("\n## ", 1)[0]
    assert "docs/configuration.md" in section and "| key |" not in section
    assert yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["name"] == CONFIG_NAMESPACE


def test_a_value_stored_as_a_secret_never_appears_in_an_error() -> None:
    # Any key may be stored with `pulumi config set --secret`; its value must not reach the engine's output or CI logs.
    _, config = read_stack_config("staging")
    engine = {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}
    app = json.loads(engine["shipsafe:app"])
    engine["shipsafe:app"] = json.dumps({**app, "host": "https://user:hunter2@x"})
    engine["shipsafe:registryPassword"] = "pw"
    with pytest.raises(ConfigError) as refused:
        settings_from_config(engine, lambda key: key in ("shipsafe:app", "shipsafe:registryPassword"))
    assert "shipsafe:app.host = [secret]" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    with pytest.raises(ConfigError) as plain:
        settings_from_config(engine, lambda key: key == "shipsafe:registryPassword")
    assert "hunter2" in str(plain.value), "a plain value is shown, so the user sees what is wrong"


def test_a_stack_file_is_reparsed_when_it_changes_and_each_reader_owns_its_copy(tmp_path: Path) -> None:
    # The parse is kept per content (a preview reads the same files for every phase).
    (tmp_path / "Pulumi.yaml").write_text("name: shipsafe\nruntime: python\n")
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text("config:\n  shipsafe:rollout:\n    maxSurge: 1\n")
    first = read_stack_file("dev", tmp_path)
    first.config["shipsafe:rollout"]["maxSurge"] = 9  # as `--set` edits a copy of the config in place
    assert read_stack_file("dev", tmp_path).config["shipsafe:rollout"] == {"maxSurge": 1}
    stack_file.write_text("config:\n  shipsafe:rollout:\n    maxSurge: 2\n")  # same size, within the same tick
    assert read_stack_file("dev", tmp_path).config["shipsafe:rollout"] == {"maxSurge": 2}
