"""wrangler.toml / .json / .jsonc → Project, with diagnostics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mayfly.project import ProjectError, find_config, load_project


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make(tmp_path: Path, filename: str, text: str) -> Path:
    write(tmp_path / filename, text)
    write(tmp_path / "src" / "index.js", "export default {};\n")
    return tmp_path


def test_toml(tmp_path: Path) -> None:
    make(
        tmp_path,
        "wrangler.toml",
        """
        name = "hello"
        main = "src/index.js"
        compatibility_date = "2025-01-01"
        compatibility_flags = ["nodejs_compat"]
        account_id = "abc"

        [vars]
        GREETING = "Hello"
        LIMIT = 3
        NESTED = { a = [1, 2] }
        """,
    )
    project = load_project(tmp_path)
    assert project.root == tmp_path.resolve()
    assert project.config_path == tmp_path.resolve() / "wrangler.toml"
    assert (project.name, project.main) == ("hello", "src/index.js")
    assert project.compatibility_date == "2025-01-01"
    assert project.compatibility_flags == ("nodejs_compat",)
    assert project.account_id == "abc"
    assert project.bindings() == [
        {"name": "GREETING", "type": "plain_text", "text": "Hello"},
        {"name": "LIMIT", "type": "json", "json": 3},
        {"name": "NESTED", "type": "json", "json": {"a": [1, 2]}},
    ]
    assert project.diagnostics == ()


def test_toml_date_without_quotes(tmp_path: Path) -> None:
    make(
        tmp_path,
        "wrangler.toml",
        'name = "a"\nmain = "src/index.js"\ncompatibility_date = 2025-02-03\n',
    )
    assert load_project(tmp_path).compatibility_date == "2025-02-03"


def test_json(tmp_path: Path) -> None:
    make(
        tmp_path,
        "wrangler.json",
        '{"name": "hello", "main": "src/index.js", "compatibility_date": "2025-01-01", '
        '"vars": {"GREETING": "Hi", "ON": true}}',
    )
    project = load_project(tmp_path)
    assert project.name == "hello"
    assert project.vars == {"GREETING": "Hi", "ON": True}


def test_jsonc_with_comments_and_trailing_commas(tmp_path: Path) -> None:
    make(
        tmp_path,
        "wrangler.jsonc",
        """
        // The Worker's configuration.
        {
          "$schema": "node_modules/wrangler/config-schema.json",
          "name": "hello", /* inline */
          "main": "src/index.js",
          "compatibility_date": "2025-01-01",
          "compatibility_flags": ["nodejs_compat",],
          "vars": {
            "URL": "http://example.com/a//b", // slashes inside strings are not comments
          },
        }
        """,
    )
    project = load_project(tmp_path)
    assert project.vars == {"URL": "http://example.com/a//b"}
    assert project.compatibility_flags == ("nodejs_compat",)
    assert project.diagnostics == ()  # $schema is accepted quietly


def test_json_wins_over_toml_with_a_warning(tmp_path: Path) -> None:
    make(tmp_path, "wrangler.toml", 'name = "from-toml"\nmain = "src/index.js"\n')
    write(tmp_path / "wrangler.json", '{"name": "from-json", "main": "src/index.js"}')
    project = load_project(tmp_path)
    assert project.name == "from-json"
    assert any("ignoring wrangler.toml" in w for w in project.warnings)


def test_found_from_a_subdirectory(tmp_path: Path) -> None:
    make(tmp_path, "wrangler.toml", 'name = "a"\nmain = "src/index.js"\n')
    assert find_config(tmp_path / "src") == tmp_path / "wrangler.toml"
    assert load_project(tmp_path / "src").main == "src/index.js"


def test_entry_and_name_override_and_need_no_config(tmp_path: Path) -> None:
    write(tmp_path / "worker.js", "export default {};")
    project = load_project(tmp_path, name="adhoc", main="worker.js")
    assert (project.name, project.main, project.config_path) == ("adhoc", "worker.js", None)


def test_entry_is_relative_to_the_working_directory(tmp_path: Path) -> None:
    make(tmp_path, "wrangler.toml", 'name = "a"\nmain = "src/index.js"\n')
    write(tmp_path / "src" / "other.js", "")
    assert load_project(tmp_path / "src", main="other.js").main == "src/other.js"


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"No wrangler\.json, wrangler\.jsonc or wrangler\.toml"):
        load_project(tmp_path)


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    make(tmp_path, "wrangler.jsonc", '{"name": "a",, }')
    with pytest.raises(ProjectError, match=r"wrangler.jsonc: not valid JSON with comments"):
        load_project(tmp_path)
    (tmp_path / "wrangler.jsonc").unlink()
    write(tmp_path / "wrangler.toml", "name = \n")
    with pytest.raises(ProjectError, match=r"wrangler.toml: not valid TOML"):
        load_project(tmp_path)


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    make(
        tmp_path,
        "wrangler.toml",
        'name = "Bad Name"\ncompatibility_date = "2025-13-45"\ncompatibility_flags = "x"\n'
        "vars = 3\n",
    )
    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path)
    message = caught.value.message
    for needle in (
        "`name`",
        "`main` is missing",
        "compatibility_date",
        "compatibility_flags",
        "`vars`",
    ):
        assert needle in message


def test_main_outside_the_project(tmp_path: Path) -> None:
    project_dir = tmp_path / "project"
    make(project_dir, "wrangler.toml", 'name = "a"\nmain = "../elsewhere.js"\n')
    with pytest.raises(ProjectError, match="outside the project"):
        load_project(project_dir)


def test_warnings_for_missing_date_and_unsupported_keys(tmp_path: Path) -> None:
    make(
        tmp_path,
        "wrangler.toml",
        'name = "a"\nmain = "src/index.js"\nworkers_dev = true\n[define]\nX = "1"\n',
    )
    warnings = load_project(tmp_path).warnings
    assert any("compatibility_date" in w for w in warnings)
    assert any("`define` is not supported" in w for w in warnings)
    assert not any("workers_dev" in w for w in warnings)


def test_bad_var_names_and_toml_datetimes(tmp_path: Path) -> None:
    make(
        tmp_path,
        "wrangler.toml",
        'name = "a"\nmain = "src/index.js"\n[vars]\n"not-ident" = "x"\nWHEN = 2025-01-01T00:00:00Z\n',
    )
    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path)
    assert "vars.not-ident" in caught.value.message
    assert "vars.WHEN" in caught.value.message


def test_explicit_config_path(tmp_path: Path) -> None:
    make(tmp_path, "other.toml", 'name = "other"\nmain = "src/index.js"\n')
    assert load_project(tmp_path, config=Path("other.toml")).name == "other"
    with pytest.raises(ProjectError, match="does not exist"):
        load_project(tmp_path, config=Path("missing.toml"))


def test_unreadable_encoding(tmp_path: Path) -> None:
    (tmp_path / "wrangler.toml").write_bytes(b"name = '\xff'")
    with pytest.raises(ProjectError, match="cannot be read"):
        load_project(tmp_path)
    assert os.path.exists(tmp_path / "wrangler.toml")


def test_triggers_crons(tmp_path: Path) -> None:
    base = 'name = "a"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\n'
    make(tmp_path, "wrangler.toml", base)
    assert load_project(tmp_path).crons is None  # not said: the Worker's are left alone
    make(tmp_path, "wrangler.toml", base + '[triggers]\ncrons = ["*/5 * * * *", "0 0 L * *"]\n')
    loaded = load_project(tmp_path)
    assert loaded.crons == ("*/5 * * * *", "0 0 L * *")
    assert not any("triggers" in w for w in loaded.warnings)
    make(tmp_path, "wrangler.toml", base + "[triggers]\ncrons = []\n")
    assert load_project(tmp_path).crons == ()  # clears them
    for bad in ('["* * *"]', '["0 0 31 2 *"]', "5"):
        make(tmp_path, "wrangler.toml", base + f"[triggers]\ncrons = {bad}\n")
        with pytest.raises(ProjectError) as caught:
            load_project(tmp_path)
        assert "triggers.crons" in caught.value.message
