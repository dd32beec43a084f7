"""README's settings and quotas tables name real settings (settings_table, SETTINGS), with their
environment variables and, where a default is written as a value, the declared default."""

from __future__ import annotations

import re
from pathlib import Path

from mayfly.settings_table import SETTINGS

README = Path(__file__).resolve().parents[2] / "README.md"
BY_FLAG = {s.flag: s for s in SETTINGS}


def table_after(header: str) -> list[list[str]]:
    lines = README.read_text().splitlines()
    start = lines.index(header) + 2  # the header and its |---| line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_settings_table_matches_the_declared_settings() -> None:
    rows = table_after("| flag | environment | default | meaning |")
    assert len(rows) >= 10
    for flag, env, default, _meaning in rows:
        setting = BY_FLAG.get(flag.strip("`"))
        assert setting is not None, f"README names {flag}, which is no setting"
        assert env == f"`{setting.env_var}`"
        written = re.fullmatch(r"`([^`]*)`( \(.*\))?", default)
        # A value, not prose such as "SQLite in the data dir"; "" is a default computed at start.
        if written and setting.default != "":
            assert setting.parse(written.group(1)) == setting.default, flag


def test_the_quotas_table_names_both_settings_of_each_quota() -> None:
    rows = table_after("| name | temporary | permanent | counts |")
    for name, temporary, permanent, _counts in rows:
        key = name.strip("`").replace("-", "_")
        for kind, written in (("temporary", temporary), ("permanent", permanent)):
            setting = BY_FLAG.get(f"--quota-{key.replace('_', '-')}-{kind}")
            assert setting is not None, f"no setting for quota {name} ({kind})"
            if re.fullmatch(r"[\d,]+", written):
                assert int(written.replace(",", "")) == setting.default, (name, kind)
