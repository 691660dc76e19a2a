"""Settings: defaults, then DALLEQ_* variables, then flags; each parsed and range-checked once."""

import dataclasses

import pytest

from server.config import ConfigError, Settings, env_name, load_settings


def test_defaults_are_those_of_the_api_doc():
    settings = load_settings({})
    assert settings.database_url == "sqlite:///./queue.db"
    assert settings.data_dir == "./data"
    assert settings.worker_token is None and settings.password is None
    assert (settings.lease_seconds, settings.max_attempts, settings.max_upload_mb) == (120, 3, 64)


def test_environment_then_overrides():
    environ = {"DALLEQ_LEASE_SECONDS": "30", "DALLEQ_PASSWORD": "pw", "DALLEQ_WORKER_TOKEN": ""}
    settings = load_settings(environ, max_attempts=5, password=None)
    assert settings.lease_seconds == 30 and settings.max_attempts == 5
    assert settings.password == "pw"  # an override of None means "flag not given"
    assert settings.worker_token is None  # an empty variable means unset
    assert load_settings(environ, lease_seconds=60).lease_seconds == 60


@pytest.mark.parametrize("name, value", [
    ("DALLEQ_LEASE_SECONDS", "soon"), ("DALLEQ_LEASE_SECONDS", "4"),
    ("DALLEQ_MAX_ATTEMPTS", "0"), ("DALLEQ_MAX_UPLOAD_MB", "-1"), ("DALLEQ_DATABASE_URL", " "),
])
def test_bad_values_name_their_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_every_setting_has_a_variable():
    names = {env_name(field.name) for field in dataclasses.fields(Settings)}
    assert {"DALLEQ_DATABASE_URL", "DALLEQ_DATA_DIR", "DALLEQ_WORKER_TOKEN", "DALLEQ_PASSWORD",
            "DALLEQ_LEASE_SECONDS", "DALLEQ_MAX_ATTEMPTS", "DALLEQ_MAX_UPLOAD_MB"} <= names


def test_replace_checks_again():
    with pytest.raises(ConfigError):
        load_settings({}).replace(max_attempts=0)


def test_the_session_key_is_made_once_private_and_kept(tmp_path):
    from server import secret_key

    settings = load_settings({}, data_dir=str(tmp_path / "data"))
    first = secret_key(settings)
    assert len(first) >= 48 and secret_key(settings) == first  # logins survive a restart
    key_file = tmp_path / "data" / ".secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in key_file.parent.iterdir()] == [".secret_key"]
    assert secret_key(settings.replace(secret_key="given")) == "given"
