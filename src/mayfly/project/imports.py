"""Find the modules a JavaScript module imports, without running or fully parsing it.

A small tokenizer skips comments, strings, template literals and regular expressions, so that
`import` inside any of them is not mistaken for an import. On the tokens it recognises:
  import x from "m"   import {a} from "m"   import * as n from "m"   import "m"
  export {a} from "m"   export * from "m"   export * as n from "m"
  import("m")  /  import(`m`)  (literal dynamic imports; others are reported as unresolvable)
  require("m")  (CommonJS modules only)
Regex-versus-division is decided by the previous token, as JavaScript tools usually do; a "regex"
that runs into a line end is re-read as a division, which bounds the damage of a wrong guess.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Literal

ImportKind = Literal["static", "dynamic", "require"]


@dataclass(frozen=True)
class ImportRef:
    specifier: str
    kind: ImportKind
    line: int


@dataclass(frozen=True)
class ScanResult:
    imports: tuple[ImportRef, ...]
    # Lines of `import(expression)` calls whose target cannot be known without running the code.
    unresolved_dynamic: tuple[int, ...]


@dataclass(frozen=True)
class _Token:
    # "template" is template text that ends with `${`; "tail" is the text after the last `}`.
    kind: Literal["name", "string", "template", "tail", "punct", "number", "regex"]
    value: str
    start: int


# A name: an ASCII letter, `_`, `$` or any non-ASCII character, then those or digits. Written as
# the ASCII characters it excludes: the class [A-Za-z_$\u0080-\uffff] means the same on the Basic
# Multilingual Plane but takes ~10 ms to compile, on every `mayfly deploy`.
_NAME = re.compile(
    r"[^\x00-\x23\x25-\x40\x5b-\x5e\x60\x7b-\x7f][^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]*"
)
_NUMBER = re.compile(r"\.?\d[\w.]*")
# After these keywords an expression starts, so `/` begins a regular expression.
_EXPRESSION_KEYWORDS = frozenset(
    {
        "return",
        "typeof",
        "instanceof",
        "in",
        "of",
        "new",
        "delete",
        "void",
        "throw",
        "case",
        "do",
        "else",
        "yield",
        "await",
    }
)


class _Tokenizer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.tokens: list[_Token] = []
        # One entry per open `{`: True when it opened a template substitution `${`.
        self.braces: list[bool] = []

    def run(self) -> list[_Token]:
        src = self.src
        if src.startswith("#!"):
            self.pos = src.find("\n") if "\n" in src else len(src)
        while self.pos < len(src):
            char = src[self.pos]
            if char in " \t\r\n\f\v\ufeff\u00a0\u2028\u2029":
                self.pos += 1
            elif src.startswith("//", self.pos):
                end = src.find("\n", self.pos)
                self.pos = len(src) if end < 0 else end
            elif src.startswith("/*", self.pos):
                end = src.find("*/", self.pos + 2)
                self.pos = len(src) if end < 0 else end + 2
            elif char in "'\"":
                self._string(char)
            elif char == "`":
                self.pos += 1
                self._template_chunk(self.pos - 1)
            elif char == "/" and self._regex_allowed() and self._regex():
                pass
            elif match := _NAME.match(src, self.pos):
                self._emit("name", match.group(), self.pos)
                self.pos = match.end()
            elif match := _NUMBER.match(src, self.pos):
                self._emit("number", match.group(), self.pos)
                self.pos = match.end()
            elif char == "{":
                self.braces.append(False)
                self._punct(char)
            elif char == "}":
                if self.braces and self.braces.pop():
                    self.pos += 1
                    self._template_chunk(self.pos - 1, continuation=True)
                else:
                    self._punct(char)
            else:
                self._punct(char)
        return self.tokens

    def _emit(self, kind: str, value: str, start: int) -> None:
        self.tokens.append(_Token(kind, value, start))  # type: ignore[arg-type]

    def _punct(self, char: str) -> None:
        self._emit("punct", char, self.pos)
        self.pos += 1

    def _string(self, quote: str) -> None:
        start, i, src = self.pos, self.pos + 1, self.src
        chars: list[str] = []
        while i < len(src) and src[i] != quote and src[i] != "\n":
            if src[i] == "\\" and i + 1 < len(src):
                chars.append(_escape(src[i + 1]))
                i += 2
                continue
            chars.append(src[i])
            i += 1
        self.pos = i + 1
        self._emit("string", "".join(chars), start)

    def _template_chunk(self, start: int, continuation: bool = False) -> None:
        """Read template text up to the closing backtick or the next `${`."""
        i, src = self.pos, self.src
        chars: list[str] = []
        while i < len(src):
            if src[i] == "\\" and i + 1 < len(src):
                chars.append(_escape(src[i + 1]))
                i += 2
            elif src[i] == "`":
                self.pos = i + 1
                # A template without substitutions is as literal as a string.
                kind = "tail" if continuation else "string"
                self._emit(kind, "".join(chars), start)
                return
            elif src.startswith("${", i):
                self.pos = i + 2
                self.braces.append(True)
                self._emit("template", "".join(chars), start)
                return
            else:
                chars.append(src[i])
                i += 1
        self.pos = len(src)

    def _regex_allowed(self) -> bool:
        if not self.tokens:
            return True
        last = self.tokens[-1]
        if last.kind == "punct":
            return last.value not in ")]}"
        if last.kind == "name":
            return last.value in _EXPRESSION_KEYWORDS
        return last.kind == "template"

    def _regex(self) -> bool:
        """Consume a regular expression literal; False (nothing consumed) if it is not one."""
        i, src, in_class = self.pos + 1, self.src, False
        while i < len(src) and src[i] != "\n":
            char = src[i]
            if char == "\\":
                i += 2
                continue
            if char == "[":
                in_class = True
            elif char == "]":
                in_class = False
            elif char == "/" and not in_class:
                end = i + 1
                while end < len(src) and (src[end].isalnum() or src[end] in "_$"):
                    end += 1
                self._emit("regex", src[self.pos : end], self.pos)
                self.pos = end
                return True
            i += 1
        return False


def _escape(char: str) -> str:
    return {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(char, char)


def scan_imports(source: str, *, commonjs: bool = False) -> ScanResult:
    tokens = _Tokenizer(source).run()
    newlines = [i for i, c in enumerate(source) if c == "\n"]

    def line(token: _Token) -> int:
        return bisect.bisect_right(newlines, token.start - 1) + 1

    found: list[ImportRef] = []
    unresolved: list[int] = []
    for index, token in enumerate(tokens):
        if token.kind != "name" or _after_dot(tokens, index):
            continue
        if token.value == "import":
            nxt = _at(tokens, index + 1)
            if nxt is not None and nxt.kind == "punct" and nxt.value == "(":
                literal = _call_literal(tokens, index + 1)
                if literal is None:
                    unresolved.append(line(token))
                else:
                    found.append(ImportRef(literal, "dynamic", line(token)))
            elif nxt is not None and nxt.kind == "string":
                found.append(ImportRef(nxt.value, "static", line(token)))
            elif nxt is not None and not (nxt.kind == "punct" and nxt.value == "."):
                source_token = _from_clause(tokens, index + 1)
                if source_token is not None:
                    found.append(ImportRef(source_token.value, "static", line(token)))
        elif token.value == "export":
            nxt = _at(tokens, index + 1)
            if nxt is not None and nxt.kind == "punct" and nxt.value in "*{":
                source_token = _from_clause(tokens, index + 1)
                if source_token is not None:
                    found.append(ImportRef(source_token.value, "static", line(token)))
        elif token.value == "require" and commonjs:
            nxt = _at(tokens, index + 1)
            if nxt is not None and nxt.kind == "punct" and nxt.value == "(":
                literal = _call_literal(tokens, index + 1)
                if literal is not None:
                    found.append(ImportRef(literal, "require", line(token)))
    return ScanResult(tuple(found), tuple(unresolved))


def _at(tokens: list[_Token], index: int) -> _Token | None:
    return tokens[index] if 0 <= index < len(tokens) else None


def _after_dot(tokens: list[_Token], index: int) -> bool:
    previous = _at(tokens, index - 1)
    return previous is not None and previous.kind == "punct" and previous.value == "."


def _call_literal(tokens: list[_Token], open_index: int) -> str | None:
    """The string in `(` "m" `)` or `(` "m" `,` …; None for any other argument."""
    argument = _at(tokens, open_index + 1)
    closing = _at(tokens, open_index + 2)
    if argument is None or argument.kind != "string" or closing is None:
        return None
    if closing.kind == "punct" and closing.value in "),":
        return argument.value
    return None


def _from_clause(tokens: list[_Token], index: int) -> _Token | None:
    """The module string after `from` in an import/export clause starting at `index`."""
    depth = 0
    for i in range(index, min(len(tokens), index + 2000)):
        token = tokens[i]
        if token.kind == "punct":
            if token.value == "{":
                depth += 1
            elif token.value == "}":
                depth -= 1
            elif token.value in ";()=" and depth == 0:
                return None
        elif token.kind == "name" and token.value == "from" and depth == 0:
            target = _at(tokens, i + 1)
            return target if target is not None and target.kind == "string" else None
        elif token.kind in ("string", "template", "tail", "regex") and depth == 0:
            return None
        if depth == 0 and token.kind == "punct" and token.value == "}":
            # `{ … }` ends the clause: only `from "m"` may follow.
            following = _at(tokens, i + 1)
            if following is None or following.kind != "name" or following.value != "from":
                return None
    return None
