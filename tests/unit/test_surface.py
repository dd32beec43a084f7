"""One refusal rule for both clients (mayfly/surface.py): the server's upload validation and the
project reader of `mayfly deploy` refuse every feature Mayfly does not serve with 10021 naming it,
and README's table "What Mayfly serves" says the same."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mayfly import surface
from mayfly.errors import ValidationError
from mayfly.model import ModuleUpload
from mayfly.project.config import UnsupportedFeature, load_project
from mayfly.services.workers.uploads import plan_upload

README = Path(__file__).resolve().parents[2] / "README.md"
JS = b"export default { fetch() { return new Response('x') } }"


def upload(metadata: dict[str, Any]) -> None:
    parts = [ModuleUpload("index.js", "application/javascript+module", JS)]
    plan_upload({"main_module": "index.js", **metadata}, parts, 10_000)


@pytest.mark.parametrize("binding_type", sorted(surface.REFUSED_BINDING_TYPES))
def test_the_server_refuses_every_binding_type_it_does_not_serve(binding_type: str) -> None:
    refused = surface.REFUSED_BINDING_TYPES[binding_type]
    with pytest.raises(ValidationError) as caught:
        upload({"bindings": [{"name": "THING", "type": binding_type}]})
    assert caught.value.code == 10021
    assert refused.feature in caught.value.message
    assert refused.instead in caught.value.message


@pytest.mark.parametrize("key", sorted(surface.REFUSED_METADATA_KEYS))
def test_the_server_refuses_every_metadata_key_it_does_not_serve(key: str) -> None:
    refused = surface.REFUSED_METADATA_KEYS[key]
    with pytest.raises(ValidationError) as caught:
        upload({key: [{"tag": "x"}]})
    assert caught.value.code == 10021
    assert refused.feature in caught.value.message


@pytest.mark.parametrize("key", ["migrations", "tail_consumers", "containers"])
def test_empty_metadata_keys_are_not_refusals(key: str) -> None:
    upload({key: []})


@pytest.mark.parametrize("key", sorted(surface.REFUSED_CONFIG_KEYS))
def test_the_project_reader_refuses_every_config_key(tmp_path: Path, key: str) -> None:
    config = {
        "name": "refused",
        "main": "index.js",
        "compatibility_date": "2025-01-01",
        key: [{"binding": "THING", "name": "x"}],
    }
    (tmp_path / "wrangler.json").write_text(json.dumps(config))
    (tmp_path / "index.js").write_text(JS.decode())
    with pytest.raises(UnsupportedFeature) as caught:
        load_project(tmp_path)
    assert caught.value.code == 10021
    assert surface.REFUSED_CONFIG_KEYS[key].feature in caught.value.message
    assert f"`{key}`" in caught.value.message


def test_a_config_without_refused_features_loads(tmp_path: Path) -> None:
    (tmp_path / "wrangler.json").write_text(
        json.dumps({"name": "fine", "main": "index.js", "routes": [], "observability": {}})
    )
    (tmp_path / "index.js").write_text(JS.decode())
    assert load_project(tmp_path).name == "fine"


def readme_table() -> dict[str, str]:
    """feature -> status, from README's "What Mayfly serves" table."""
    text = README.read_text()
    section = text.split("## What Mayfly serves", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and line.startswith("|") and not re.match(r"^-+$", cells[0]):
            rows[cells[0]] = cells[1]
    rows.pop("Feature", None)
    return rows


def test_the_readme_table_says_what_the_code_refuses() -> None:
    table = readme_table()
    expected = {r.feature: r.status for r in surface.REFUSED}
    expected.update({feature: "supported" for feature, _ in surface.SERVED})
    assert table == expected
