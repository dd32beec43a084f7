"""`[[r2_buckets]]` and `[[services]]` in a project's config: read into upload bindings (what
`mayfly deploy` sends), every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mayfly.project.config import ProjectError, load_project

JS = "export default { fetch() { return new Response('x') } }"


def project(tmp_path: Path, **config: Any) -> Path:
    (tmp_path / "wrangler.json").write_text(
        json.dumps({"name": "w", "main": "index.js", "compatibility_date": "2025-01-01", **config})
    )
    (tmp_path / "index.js").write_text(JS)
    return tmp_path


def test_buckets_and_services_become_upload_bindings(tmp_path: Path) -> None:
    loaded = load_project(
        project(
            tmp_path,
            r2_buckets=[{"binding": "MEDIA", "bucket_name": "media-1"}],
            services=[
                {"binding": "API", "service": "api"},
                {"binding": "RPC", "service": "api", "entrypoint": "Greeter"},
            ],
        )
    )
    assert loaded.bindings() == [
        {"name": "MEDIA", "type": "r2_bucket", "bucket_name": "media-1"},
        {"name": "API", "type": "service", "service": "api"},
        {"name": "RPC", "type": "service", "service": "api", "entrypoint": "Greeter"},
    ]
    assert loaded.warnings == []


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"r2_buckets": {"binding": "B"}}, "must be a list"),
        ({"r2_buckets": [{"binding": "B"}]}, "`bucket_name` None"),
        ({"r2_buckets": [{"binding": "B", "bucket_name": "UPPER"}]}, "lowercase"),
        ({"r2_buckets": [{"binding": "1x", "bucket_name": "ok-name"}]}, "JavaScript identifier"),
        (
            {"r2_buckets": [{"binding": "B", "bucket_name": "ok-name", "jurisdiction": "eu"}]},
            "jurisdictions",
        ),
        ({"services": [{"binding": "S"}]}, "`service` must name a Worker"),
        ({"services": [{"binding": "S", "service": "x", "entrypoint": "a-b"}]}, "exported class"),
        (
            {
                "vars": {"DUP": "1"},
                "services": [{"binding": "DUP", "service": "x"}],
            },
            "used twice",
        ),
    ],
)
def test_bad_entries_are_reported(tmp_path: Path, config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ProjectError) as caught:
        load_project(project(tmp_path, **config))
    assert problem in caught.value.message
