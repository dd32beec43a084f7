from pathlib import Path

import pytest

from mayfly.settings import SETTINGS, Settings, load_settings


def test_flag_beats_environment_beats_default() -> None:
    env = {"MAYFLY_API_PORT": "9000", "MAYFLY_DOMAIN": "example.test"}
    assert load_settings({}, env).api_port == 9000
    assert load_settings({"api_port": 9100}, env).api_port == 9100
    assert load_settings({}, {}).api_port == 8787
    assert load_settings({}, env).domain == "example.test"


def test_every_setting_is_a_field_with_the_same_default_and_has_help() -> None:
    defaults = Settings()
    for setting in SETTINGS:
        assert setting.help.strip(), setting.name
        value = getattr(defaults, setting.name)
        if setting.name == "data_dir":
            assert value == Path(setting.default)
        elif setting.name in ("public_url", "database_url"):
            continue  # derived
        else:
            assert value == setting.default, setting.name
    assert {s.name for s in SETTINGS} == set(Settings.__dataclass_fields__)


def test_derived_defaults() -> None:
    s = Settings(api_port=9999, data_dir=Path("/tmp/x"))
    assert s.public_url == "http://localhost:9999"
    assert s.database_url == "sqlite:////tmp/x/mayfly.db"
    assert Settings(workers_port=80).workers_url_suffix == "localhost"
    assert Settings().workers_url_suffix == "localhost:8788"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="MAYFLY_API_PORT"):
        load_settings({}, {"MAYFLY_API_PORT": "eighty"})


def test_boolean_settings_parse() -> None:
    assert load_settings({}, {"MAYFLY_RUNTIME": "false"}).runtime is False
    assert load_settings({}, {"MAYFLY_RUNTIME": "1"}).runtime is True
