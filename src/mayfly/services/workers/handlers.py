"""The handlers a Worker's main module exports, read from its syntax tree at upload.

Cloudflare learns them by running the script; Mayfly parses it with tree-sitter's JavaScript
grammar (a real parser, in C), before the upload's write transaction and off the event loop. The
parser holds the GIL while it runs (about 0.25 s of CPU a megabyte), so a module over
IN_PROCESS_BYTES is parsed in a child process (`python -m mayfly.services.workers.handlers`) and
the server's threads keep running; bench/handlers.py measures both against the old regex. A handler is a method or property of the default export (an
object literal or a class, directly or through the name it was declared under), or, in a
service-worker script, an event passed to a top-level `addEventListener`. Nothing is guessed from
a call such as `fetch(url)` inside the code.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys

import tree_sitter_javascript
from tree_sitter import Language, Node, Parser

log = logging.getLogger("mayfly.handlers")

HANDLER_NAMES = ("fetch", "scheduled", "queue", "email", "tail", "alarm")
IN_PROCESS_BYTES = 256 * 1024  # about 60 ms of parsing with the GIL held
CHILD_TIMEOUT = 120  # seconds; a module the parser cannot finish in that time has no handlers


@functools.cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_javascript.language()))


def detect_handlers(main_source: bytes) -> list[str]:
    """The handlers `main_source` exports, in HANDLER_NAMES order."""
    if len(main_source) <= IN_PROCESS_BYTES:
        return parse_handlers(main_source)
    try:
        done = subprocess.run(
            [sys.executable, "-m", __name__],
            input=main_source,
            capture_output=True,
            timeout=CHILD_TIMEOUT,
            check=True,
        )
        found = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        log.warning("could not parse a main module for its handlers", exc_info=True)
        return []
    return [name for name in HANDLER_NAMES if name in found]


def parse_handlers(main_source: bytes) -> list[str]:
    """detect_handlers in this process (the GIL held throughout)."""
    program = _parser().parse(main_source).root_node
    found = _default_export_members(program) | _listened_events(program)
    return [name for name in HANDLER_NAMES if name in found]


def _default_export_members(program: Node) -> set[str]:
    for statement in program.named_children:
        if statement.type != "export_statement":
            continue
        value = statement.child_by_field_name("value") or statement.child_by_field_name(
            "declaration"
        )
        if value is not None and any(c.type == "default" for c in statement.children):
            return _members(program, value)
        clause = next((c for c in statement.named_children if c.type == "export_clause"), None)
        for specifier in clause.named_children if clause is not None else []:
            alias = specifier.child_by_field_name("alias")
            name = specifier.child_by_field_name("name")
            if alias is not None and _text(alias) == "default" and name is not None:
                if statement.child_by_field_name("source") is not None:
                    return set()  # re-exported from another module: not followed
                return _members(program, name)
    return set()


def _members(program: Node, value: Node) -> set[str]:
    """The property names of an object literal or the methods of a class, following one
    identifier to its top-level declaration (`const worker = {…}; export default worker`)."""
    while value.type == "parenthesized_expression" and value.named_child_count == 1:
        value = value.named_children[0]
    if value.type == "identifier":
        declared = _declaration_of(program, _text(value))
        return _members(program, declared) if declared is not None else set()
    if value.type == "object":
        return {name for child in value.named_children if (name := _key(child)) is not None}
    if value.type in ("class", "class_declaration"):
        body = value.child_by_field_name("body")
        return {
            name
            for child in (body.named_children if body is not None else [])
            if child.type in ("method_definition", "field_definition")
            and not any(c.type == "static" for c in child.children)
            and (name := _key(child)) is not None
        }
    return set()


def _key(member: Node) -> str | None:
    if member.type == "shorthand_property_identifier":
        return _text(member)
    field = "property" if member.type == "field_definition" else "key"
    if member.type == "method_definition":
        field = "name"
    if member.type not in ("pair", "method_definition", "field_definition"):
        return None
    key = member.child_by_field_name(field)
    if key is None:
        return None
    if key.type == "string":
        return "".join(_text(c) for c in key.named_children)
    if key.type in ("property_identifier", "private_property_identifier"):
        return _text(key)
    return None  # computed keys are not evaluated


def _declaration_of(program: Node, name: str) -> Node | None:
    for statement in program.named_children:
        declaration = statement
        if statement.type == "export_statement":
            declaration = statement.child_by_field_name("declaration") or statement
        if declaration.type == "class_declaration":
            declared = declaration.child_by_field_name("name")
            if declared is not None and _text(declared) == name:
                return declaration
        if declaration.type in ("lexical_declaration", "variable_declaration"):
            for declarator in declaration.named_children:
                declared = declarator.child_by_field_name("name")
                value = declarator.child_by_field_name("value")
                if declared is not None and _text(declared) == name and value is not None:
                    return value
    return None


def _listened_events(program: Node) -> set[str]:
    """`addEventListener("fetch", …)` (or `self.`/`globalThis.addEventListener`) at top level."""
    events = set()
    for statement in program.named_children:
        call = statement.named_children[0] if statement.type == "expression_statement" else None
        if call is None or call.type != "call_expression":
            continue
        function = call.child_by_field_name("function")
        arguments = call.child_by_field_name("arguments")
        if function is None or arguments is None or not arguments.named_children:
            continue
        callee = function
        if function.type == "member_expression":
            callee = function.child_by_field_name("property") or function
        first = arguments.named_children[0]
        if _text(callee) == "addEventListener" and first.type == "string":
            events.add("".join(_text(c) for c in first.named_children))
    return events


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


if __name__ == "__main__":  # the child process of detect_handlers: source on stdin, JSON out
    json.dump(parse_handlers(sys.stdin.buffer.read()), sys.stdout)
