"""A Worker's handlers come from what its main module exports, parsed (services/workers/handlers.py),
not from any `name(` in its code."""

from __future__ import annotations

import pytest

from mayfly.services.workers import handlers
from mayfly.services.workers.handlers import detect_handlers

CASES = [
    (
        "export default { async fetch(r) { return fetch(r); }, scheduled: () => 1 };",
        ["fetch", "scheduled"],
    ),
    ('const w = { "queue": f, tail }; export default w;', ["queue", "tail"]),
    ("const w = { email() {} }; export { w as default };", ["email"]),
    (
        "export default class extends WorkerEntrypoint { async fetch() {} static alarm() {} }",
        ["fetch"],
    ),
    ("class W { fetch = () => 1 }\nexport default W;", ["fetch"]),
    ("export default ({ fetch() {} });", ["fetch"]),
    ('addEventListener("fetch", (e) => e.respondWith(new Response("x")));', ["fetch"]),
    ('self.addEventListener("scheduled", (e) => e.waitUntil(run()));', ["scheduled"]),
    # calls, strings and comments that name a handler are not exports
    (
        'export default { async fetch(r) { const t = "scheduled("; await queue(1); return new Response(t) } }',
        ["fetch"],
    ),
    ("// scheduled()\nexport default { fetch() {} /* tail: */ }", ["fetch"]),
    ("export const fetch = 1; export function scheduled() {}", []),
    ('export { default } from "./worker.js";', []),
    ("not javascript {{{", []),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_handlers_are_the_default_exports_members(source: str, expected: list[str]) -> None:
    assert detect_handlers(source.encode()) == expected


def test_a_large_module_is_parsed_in_a_child_process_with_the_same_answer() -> None:
    padding = b"const filler = 1;\n" * (handlers.IN_PROCESS_BYTES // 18 + 1)
    source = padding + b"export default { fetch() {}, scheduled() {} };\n"
    assert len(source) > handlers.IN_PROCESS_BYTES
    assert detect_handlers(source) == handlers.parse_handlers(source) == ["fetch", "scheduled"]
