"""[env.NAME] sections with wrangler's inheritance rules; kv_namespaces and assets tables; .dev.vars."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayfly.project import KVNamespace, ProjectError, load_project, parse_dotenv, read_dev_vars

CONFIG = """
name = "shop"
main = "src/index.js"
compatibility_date = "2025-01-01"
compatibility_flags = ["nodejs_compat"]
account_id = "top-account"

[vars]
MODE = "production"

[[kv_namespaces]]
binding = "CACHE"
id = "top-cache"

[assets]
directory = "public"

[env.staging]
[env.staging.vars]
MODE = "staging"

[env.custom]
name = "shop-special"
main = "src/other.js"
compatibility_date = "2025-06-01"
kv_namespaces = [{ binding = "CACHE" }]
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    (tmp_path / "wrangler.toml").write_text(CONFIG)
    return tmp_path


def test_top_level(project_dir: Path) -> None:
    project = load_project(project_dir)
    assert project.name == "shop" and project.env is None
    assert project.vars == {"MODE": "production"}
    assert project.kv_namespaces == (KVNamespace("CACHE", "top-cache"),)
    assert project.assets is not None and project.assets.directory == project_dir / "public"
    assert project.warnings == []


def test_an_environment_inherits_some_keys_and_not_the_bindings(project_dir: Path) -> None:
    project = load_project(project_dir, env="staging")
    assert project.name == "shop-staging"
    assert project.main == "src/index.js"
    assert project.compatibility_date == "2025-01-01"
    assert project.compatibility_flags == ("nodejs_compat",)
    assert project.account_id == "top-account"
    assert project.assets is not None  # assets are inherited in wrangler 4
    assert project.vars == {"MODE": "staging"}
    assert project.kv_namespaces == ()
    [warning] = project.warnings
    assert "`kv_namespaces` exists at the top level but not in [env.staging]" in warning


def test_an_environment_overrides(project_dir: Path) -> None:
    project = load_project(project_dir, env="custom")
    assert project.name == "shop-special"
    assert project.main == "src/other.js"
    assert project.compatibility_date == "2025-06-01"
    assert project.kv_namespaces == (KVNamespace("CACHE", None),)
    assert project.vars == {}
    assert any("`vars` exists at the top level" in w for w in project.warnings)


def test_the_name_flag_wins(project_dir: Path) -> None:
    assert load_project(project_dir, env="staging", name="explicit").name == "explicit"


def test_an_unknown_environment(project_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"no environment named 'prod'.*'custom', 'staging'"):
        load_project(project_dir, env="prod")
    # Without any [env] section, wrangler warns and uses the top level, suffixing the name.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "wrangler.toml").write_text('name = "w"\nmain = "i.js"\n[vars]\nA = "1"\n')
    project = load_project(bare, env="dev")
    assert (project.name, project.vars) == ("w-dev", {"A": "1"})
    assert any("no [env.dev] section" in w for w in project.warnings)


def test_kv_namespace_errors(tmp_path: Path) -> None:
    (tmp_path / "wrangler.toml").write_text(
        'name = "w"\nmain = "i.js"\n'
        'kv_namespaces = [{ binding = "not ok" }, { id = 3 }, { binding = "A", id = 4 }]\n'
        '[vars]\nB = "x"\n[[env.e.kv_namespaces]]\nbinding = "B"\n'
    )
    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path)
    message = caught.value.message
    assert "`kv_namespaces[0]`: `binding` 'not ok'" in message
    assert "`kv_namespaces[1]`: `binding` None" in message
    assert "`kv_namespaces[2]`: `id` must be" in message
    (tmp_path / "wrangler.toml").write_text(
        'name = "w"\nmain = "i.js"\n[vars]\nB = "x"\n[[kv_namespaces]]\nbinding = "B"\n'
    )
    with pytest.raises(ProjectError, match="binding name 'B' is used twice"):
        load_project(tmp_path)


def write_assets(tmp_path: Path, table: str, main: str = 'main = "i.js"\n') -> Path:
    (tmp_path / "wrangler.toml").write_text(f'name = "w"\n{main}[assets]\n{table}')
    return tmp_path


def test_assets_table(tmp_path: Path) -> None:
    write_assets(
        tmp_path,
        'directory = "./dist"\nbinding = "ASSETS"\nhtml_handling = "drop-trailing-slash"\n'
        'not_found_handling = "single-page-application"\nrun_worker_first = ["/api/*", "!/api/x"]\n'
        'base_path = "/docs"\n',
    )
    assets = load_project(tmp_path).assets
    assert assets is not None
    assert assets.directory == tmp_path / "dist"
    assert assets.binding == "ASSETS"
    assert assets.html_handling == "drop-trailing-slash"
    assert assets.not_found_handling == "single-page-application"
    assert assets.run_worker_first == ("/api/*", "!/api/x")
    assert assets.base_path == "/docs"


@pytest.mark.parametrize(
    ("table", "main", "needle"),
    [
        ('binding = "A"\n', 'main = "i.js"\n', "`assets.directory` is missing"),
        ('directory = "d"\nhtml_handling = "bogus"\n', "", "`assets.html_handling` must be"),
        ('directory = "d"\nnot_found_handling = "index"\n', "", "not_found_handling` must be"),
        ('directory = "d"\nrun_worker_first = ["!/x"]\n', 'main = "i.js"\n', "only negative"),
        ('directory = "d"\nrun_worker_first = ["api"]\n', 'main = "i.js"\n', "start with '/'"),
        ('directory = "d"\nbinding = "A"\n', "", "`assets.binding` needs a Worker script"),
        ('directory = "d"\nrun_worker_first = true\n', "", "needs a Worker script"),
        ('directory = "d"\nserve_directly = true\n', "", "unknown key(s) serve_directly"),
    ],
)
def test_assets_errors(tmp_path: Path, table: str, main: str, needle: str) -> None:
    write_assets(tmp_path, table, main)
    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path)
    assert needle in caught.value.message


def test_an_assets_only_worker_needs_no_main(tmp_path: Path) -> None:
    write_assets(tmp_path, 'directory = "d"\n', main="")
    project = load_project(tmp_path)
    assert project.main is None
    write_assets(tmp_path, 'directory = "d"\nrun_worker_first = true\n')
    assert any("without `assets.binding`" in w for w in load_project(tmp_path).warnings)


def test_commands_read_a_config_without_main(tmp_path: Path) -> None:
    (tmp_path / "wrangler.toml").write_text('name = "w"\n')
    with pytest.raises(ProjectError, match="`main` is missing"):
        load_project(tmp_path)
    assert load_project(tmp_path, require_main=False).main is None


def test_dotenv_syntax() -> None:
    text = (
        "# a comment\n"
        "PLAIN=value\n"
        "export SPACED = two words # trailing comment\n"
        'DOUBLE="line one\\nline two"\n'
        "SINGLE='keeps # and \\n'\n"
        "EMPTY=\n"
        'MULTI="first\nsecond"\n'
        "EQUALS=a=b\r\n"
    )
    assert parse_dotenv(text) == {
        "PLAIN": "value",
        "SPACED": "two words",
        "DOUBLE": "line one\nline two",
        "SINGLE": "keeps # and \\n",
        "EMPTY": "",
        "MULTI": "first\nsecond",
        "EQUALS": "a=b",
    }


def test_dev_vars_per_environment(project_dir: Path) -> None:
    assert read_dev_vars(load_project(project_dir)) is None
    (project_dir / ".dev.vars").write_text("A=1\n")
    (project_dir / ".dev.vars.staging").write_text("A=2\n")
    top = read_dev_vars(load_project(project_dir))
    staging = read_dev_vars(load_project(project_dir, env="staging"))
    custom = read_dev_vars(load_project(project_dir, env="custom"))
    assert top is not None and top.values == {"A": "1"}
    assert staging is not None and staging.values == {"A": "2"}
    assert custom is not None and custom.path.name == ".dev.vars"
    (project_dir / ".dev.vars").write_text("not-an-identifier=1\n")
    with pytest.raises(ProjectError, match="cannot be secret names"):
        read_dev_vars(load_project(project_dir))
