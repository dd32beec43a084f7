"""Every server setting, declared once: its name, default, help text and parser. A value comes
from the flag, else the MAYFLY_* environment variable, else this default (settings.py).

SETTINGS lists them in the order of `--help` and docs/cli.md, by concern: server.py, quotas.py,
clients.py, data_plane.py, nodes.py (a Setting and its parsers: setting.py).
"""

from __future__ import annotations

from typing import Any

from mayfly.settings_table.clients import CLIENTS
from mayfly.settings_table.data_plane import DATA_PLANE
from mayfly.settings_table.nodes import NODES
from mayfly.settings_table.quotas import QUOTAS
from mayfly.settings_table.server import SERVER
from mayfly.settings_table.setting import Setting

__all__ = ["SETTINGS", "Setting", "default"]

SETTINGS: tuple[Setting, ...] = (*SERVER, *QUOTAS, *CLIENTS, *DATA_PLANE, *NODES)

_DEFAULTS = {s.name: s.default for s in SETTINGS}


def default(name: str) -> Any:
    """The declared default of setting `name` (the Settings dataclass takes its defaults here)."""
    return _DEFAULTS[name]
