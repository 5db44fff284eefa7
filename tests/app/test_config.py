"""Config comes only from the environment and is checked before anything starts."""

from __future__ import annotations

import pytest
from notes_app.config import ConfigError, Settings

REQUIRED = {"DATABASE_URL": "postgresql://app:s3cret@db:5432/notes", "REDIS_URL": "redis://cache:6379/0"}


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env(REQUIRED)
    assert (settings.port, settings.log_level, settings.shutdown_timeout_seconds) == (3002, "info", 20)
    assert settings.allowed_hosts == ("localhost",)


def test_allowed_hosts_are_a_list_of_names() -> None:
    settings = Settings.from_env(REQUIRED | {"ALLOWED_HOSTS": " Notes.Example.com, *.svc.cluster.local ,"})
    assert settings.allowed_hosts == ("notes.example.com", "*.svc.cluster.local")


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"SHUTDOWN_TIMEOUT_SECONDS": "40"}, "SHUTDOWN_TIMEOUT_SECONDS"),
        ({"SHUTDOWN_TIMEOUT_SECONDS": "20", "SHUTDOWN_DRAIN_SECONDS": "5"}, "SHUTDOWN_DRAIN_SECONDS"),
        ({"ALLOWED_HOSTS": "notes.example.com:443"}, "ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": "a.*.example.com"}, "ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": " , "}, "ALLOWED_HOSTS"),
    ],
)
def test_bad_values_are_rejected_by_name(override: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(REQUIRED | override)


def test_secrets_never_appear_in_errors_or_repr() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**REQUIRED, "DATABASE_URL": "mysql://app:s3cret@db/notes"})
    assert "s3cret" not in str(error.value)
    assert "s3cret" not in repr(Settings.from_env(REQUIRED))
