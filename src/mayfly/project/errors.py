"""Why a project cannot be deployed: a ProjectError carrying its Diagnostics.

Its own module, so that what reports these errors (the CLI's output) need not import the
configuration reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Self


@dataclass(frozen=True)
class Diagnostic:
    severity: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return self.message


class ProjectError(Exception):
    """The project cannot be deployed as it is; `diagnostics` say why (errors first)."""

    code = "project_invalid"

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics, key=lambda d: d.severity != "error"))
        errors = [d.message for d in self.diagnostics if d.severity == "error"]
        self.message = "\n".join(errors) or "The project is not valid."
        super().__init__(self.message)

    @classmethod
    def single(cls, message: str) -> Self:
        return cls([Diagnostic("error", message)])


class UnsupportedFeature(ProjectError):
    """The project uses a feature Mayfly does not serve (mayfly/surface.py): the server would refuse
    its upload with the same 10021, so it is refused before anything is built or uploaded."""

    code = 10021  # type: ignore[assignment]
