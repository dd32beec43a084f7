"""A package's public names, each imported from its submodule on first use (PEP 562).

`from mayfly.sdk import MayflyClient` then imports mayfly.sdk.client and what it needs, not every
module of the SDK: a CLI command pays only for what it uses. The package still imports its names
under `TYPE_CHECKING`, for type checkers and readers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], modules: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for the module whose `globals()` are `namespace`: the names
    `modules[M]` come from `package`'s module M (a package's own, or a sibling's)."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        qualified = f"{package}.{module}"
        __import__(qualified)  # not importlib.import_module: `python -X importtime` counts this
        value = getattr(sys.modules[qualified], name)
        namespace[name] = value  # the next lookup is an ordinary attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
