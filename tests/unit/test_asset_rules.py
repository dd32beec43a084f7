"""_redirects and _headers parsed as Cloudflare's workers-shared parsers do (spec §7.5).

The cases follow the JavaScript bundled in miniflare (parseRedirects, parseHeaders,
constructRedirects, constructHeaders); the compat tests at the end run that JavaScript itself, copied
out of node_modules/miniflare at runtime, and compare rules and warnings on the same inputs."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mayfly.services.resources.asset_rules import (
    INFINITE_LOOP,
    RuleWarning,
    extract_pathname,
    parse_headers,
    parse_redirects,
)
from tests.conftest import missing

# -- _redirects ------------------------------------------------------------------------------------


def redirects(text: str, html_handling: str | None = None) -> dict[str, Any]:
    rules, _ = parse_redirects(text, html_handling)
    assert rules is not None
    return dict(rules)


def messages(warnings: list[RuleWarning]) -> list[str]:
    return [w.message for w in warnings]


def test_status_defaults_to_302_and_comments_and_blank_lines_are_skipped() -> None:
    text = "# moved pages\n\n  /old   /new  \r\n/gone /new 301 # permanent\n\t#/x /y\n"
    rules, warnings = parse_redirects(text)
    assert warnings == []
    assert rules == {
        "version": 1,
        "staticRules": {
            "/old": {"status": 302, "to": "/new", "lineNumber": 3},
            "/gone": {"status": 301, "to": "/new", "lineNumber": 4},
        },
        "rules": {},
    }


def test_every_permitted_status_and_numbers_read_as_javascript_does() -> None:
    text = "\n".join(f"/s{code} /t {code}" for code in (200, 301, 302, 303, 307, 308))
    assert [r["status"] for r in redirects(text)["staticRules"].values()] == [
        200,
        301,
        302,
        303,
        307,
        308,
    ]
    # Number("0x12d") == 301, Number("3.01e2") == 301
    rules = redirects("/hex /t 0x12d\n/exp /t 3.01e2\n/plus /t +308")["staticRules"]
    assert [r["status"] for r in rules.values()] == [301, 301, 308]


@pytest.mark.parametrize("status", ["304", "404", "abc", "301x", "1_0", "inf", "NaN"])
def test_invalid_status_is_skipped_with_a_warning(status: str) -> None:
    rules, warnings = parse_redirects(f"/a /b {status}\n/c /d")
    assert rules is not None and list(rules["staticRules"]) == ["/c"]
    assert warnings == [
        RuleWarning(
            f"Valid status codes are 200, 301, 302 (default), 303, 307, or 308. Got {status}.",
            f"/a /b {status}",
            1,
        )
    ]


def test_token_counts() -> None:
    rules, warnings = parse_redirects("/a\n/a /b 301 extra\n/ok /fine")
    assert rules is not None and list(rules["staticRules"]) == ["/ok"]
    assert messages(warnings) == [
        "Expected exactly 2 or 3 whitespace-separated tokens. Got 1.",
        "Expected exactly 2 or 3 whitespace-separated tokens. Got 4.",
    ]
    assert [w.line_number for w in warnings] == [1, 2]


def test_urls() -> None:
    rules, warnings = parse_redirects(
        "https://example.com/a /b\n"  # from must be relative
        "/c http://example.com/\n"  # to: relative or https
        "/e https://example.com:8443/x?q=1#top 308\n"  # ports allowed in targets
        "relative /f\n"  # a leading slash is added to from
        "/g/./h/../i /a%20b/%2e%2e/c?x=a#frag\n"  # normalised as new URL() does
        "/ü /ä\n"
    )
    assert rules is not None
    assert rules["staticRules"] == {
        "/e": {"status": 308, "to": "https://example.com:8443/x?q=1#top", "lineNumber": 3},
        "/relative": {"status": 302, "to": "/f", "lineNumber": 4},
        "/g/i": {"status": 302, "to": "/c?x=a#frag", "lineNumber": 5},
        "/%C3%BC": {"status": 302, "to": "/%C3%A4", "lineNumber": 6},
    }
    assert messages(warnings) == [
        "Only relative URLs are allowed. Skipping absolute URL https://example.com/a.",
        'URLs should either be relative (e.g. begin with a forward-slash), or use HTTPS (e.g. begin with "https://").',
    ]


def test_200_rewrites_need_relative_targets() -> None:
    rules, warnings = parse_redirects(
        "/proxy https://example.com/x 200\n/proxy /y 200\n/spa/* /index 200"
    )
    assert rules is None
    assert messages(warnings) == [
        "Proxy (200) redirects can only point to relative paths. Got https://example.com/x",
        # the refused rewrite still claimed its path
        "Ignoring duplicate rule for path /proxy.",
        INFINITE_LOOP,
    ]


def test_splats_and_placeholders_make_a_rule_dynamic_and_keep_the_rest_dynamic() -> None:
    rules = redirects(
        "/a /b\n/blog/* /posts/:splat 301\n/users/:id /u/:id\n/after /static-looking\n"
        "/port:8080 /p\n/time /t"
    )
    assert rules["staticRules"] == {"/a": {"status": 302, "to": "/b", "lineNumber": 1}}
    assert rules["rules"] == {
        "/blog/*": {"status": 301, "to": "/posts/:splat"},
        "/users/:id": {"status": 302, "to": "/u/:id"},
        "/after": {"status": 302, "to": "/static-looking"},
        "/port:8080": {"status": 302, "to": "/p"},
        "/time": {"status": 302, "to": "/t"},
    }
    # ":8" is no placeholder: a digit cannot start one
    assert list(redirects("/port:8080 /p")["staticRules"]) == ["/port:8080"]


def test_duplicates_keep_the_first_rule() -> None:
    rules, warnings = parse_redirects("/a /b 301\n/a /c 302\n/./a /d")
    assert rules is not None and rules["staticRules"] == {
        "/a": {"status": 301, "to": "/b", "lineNumber": 1}
    }
    assert messages(warnings) == ["Ignoring duplicate rule for path /a."] * 2


@pytest.mark.parametrize(
    ("line", "html_handling", "loops"),
    [
        ("/* /index.html 200", None, True),
        ("/* /index 200", "none", True),  # splats loop whatever the html handling
        ("/app/* /app/index.html 301", None, True),
        ("/ /index.html", "auto-trailing-slash", True),
        ("/docs/ /docs/index", "drop-trailing-slash", True),
        ("/ /index.html", "none", False),  # nothing strips /index then
        ("/* /index.html?x=1 200", None, False),
        ("/* https://example.com/index.html", None, False),
        ("/* /home.html 200", None, False),
    ],
)
def test_the_loop_rule(line: str, html_handling: str | None, loops: bool) -> None:
    rules, warnings = parse_redirects(line, html_handling)
    assert (messages(warnings) == [INFINITE_LOOP]) is loops
    assert (rules is None) is loops


def test_limits() -> None:
    static = "\n".join(f"/s{i} /t" for i in range(2001))
    rules, warnings = parse_redirects(static)
    assert rules is not None and len(rules["staticRules"]) == 2000
    assert warnings == [
        RuleWarning("Maximum number of static rules supported is 2000. Skipping line.")
    ]
    dynamic = "\n".join(f"/d{i}/* /t" for i in range(102)) + "\n/more /t"
    rules, warnings = parse_redirects(dynamic)
    assert rules is not None and len(rules["rules"]) == 100
    assert warnings == [
        RuleWarning(
            "Maximum number of dynamic rules supported is 100. Skipping remaining 3 lines of file."
        )
    ]
    # invalid lines with a valid `from` still count towards the limits
    rules, _ = parse_redirects("/a /b 999\n/c /d", max_static_rules=1)
    assert rules is None
    long_line = "/" + "x" * 1999
    rules, warnings = parse_redirects(f"{long_line} /t\n{long_line} /t\n/ok /t")
    assert rules is not None and list(rules["staticRules"]) == ["/ok"]
    assert warnings == [
        RuleWarning(f"Ignoring line {n} as it exceeds the maximum allowed length of 2000.")
        for n in (1, 2)
    ]


def test_a_file_where_nothing_is_valid_gives_no_rules() -> None:
    assert parse_redirects("") == (None, [])
    rules, warnings = parse_redirects("garbage\n/a /b 999")
    assert rules is None and len(warnings) == 2


def test_warnings_render_like_wrangler() -> None:
    _, warnings = parse_redirects("# c\n/* /index.html 200")
    assert warnings[0].render("_redirects") == (
        f"_redirects:2 (/* /index.html 200): {INFINITE_LOOP}"
    )
    assert RuleWarning("Too many.").render("_headers") == "_headers: Too many."


# -- _headers --------------------------------------------------------------------------------------

HEADERS = """\
# security headers
/*
  X-Frame-Options: DENY
  Referrer-Policy: no-referrer

/css/*
  Cache-Control: public, max-age=31536000
  ! ETag
  ! Access-Control-Allow-Origin
/api/:name
  Link: </style.css>; rel=preload
  Link: </app.js>; rel=preload
  X-Url: https://example.com:8080/x
https://example.com/only-there
  X-Host: example.com
"""


def test_headers() -> None:
    rules, warnings = parse_headers(HEADERS)
    assert warnings == []
    assert rules == {
        "version": 2,
        "rules": {
            "/*": {"set": {"x-frame-options": "DENY", "referrer-policy": "no-referrer"}},
            "/css/*": {
                "set": {"cache-control": "public, max-age=31536000"},
                "unset": ["ETag", "Access-Control-Allow-Origin"],
            },
            "/api/:name": {
                "set": {
                    "link": "</style.css>; rel=preload, </app.js>; rel=preload",
                    "x-url": "https://example.com:8080/x",
                }
            },
            "https://example.com/only-there": {"set": {"x-host": "example.com"}},
        },
    }


def test_header_lines_that_are_refused() -> None:
    rules, warnings = parse_headers(
        "X-Early: yes\n"  # 1: before any path
        "no-colon-at-all\n"  # 2: before any path
        "/a\n"  # 3
        "  Bad Name: x\n"  # 4
        "  : value\n"  # 5
        "  X-Empty:\n"  # 6
        "  just words\n"  # 7
        "  X-Ok: 1\n"  # 8
        "/empty\n"  # 9: no headers
        "/two/*/*\n"  # 10: one wildcard at most
        "  X-Skipped: until the next path\n"  # 11
        "/mix/*/:splat\n"  # 12
        "https://example.com:8443/x\n"  # 13: no ports
        "ftp://example.com/x\n"  # 14
        "/last\n"  # 15: no headers, at the end
    )
    assert rules == {"version": 2, "rules": {"/a": {"set": {"x-ok": "1"}}}}
    assert [(w.message, w.line_number) for w in warnings] == [
        ("Path should come before header (x-early: yes)", 1),
        ("Expected a path beginning with at least one forward-slash", 2),
        ("Header name cannot include spaces", 4),
        ("No header name specified", 5),
        ("No header value specified", 6),
        ("Expected a colon-separated header pair (e.g. name: value)", 7),
        # Cloudflare reports the line of the next path for an empty rule
        ("No headers specified", 10),
        (
            "Only one wildcard is allowed per rule. Use a named placeholder (e.g. :project) "
            "instead. Skipping /two/*/*.",
            10,
        ),
        (
            "Cannot combine a wildcard * with a :splat placeholder because wildcards are "
            "converted to :splat at runtime. Skipping /mix/*/:splat.",
            12,
        ),
        (
            "Specifying ports is not supported. Skipping absolute URL https://example.com:8443/x.",
            13,
        ),
        (
            "URLs should either be relative (e.g. begin with a forward-slash), or use HTTPS "
            '(e.g. begin with "https://").',
            14,
        ),
        ("No headers specified", None),
    ]
    assert warnings[6].line == "/empty"


def test_header_paths_are_normalised_and_a_later_duplicate_wins() -> None:
    rules, _ = parse_headers("/a/../b?x#y\n  X: 1\n/c\n  Y: 1\n/b\n  ! Z")
    assert rules is not None
    assert list(rules["rules"].items()) == [("/b", {"unset": ["Z"]}), ("/c", {"set": {"y": "1"}})]


def test_header_rule_limit_keeps_the_open_rule() -> None:
    text = "".join(f"/p{i}\n  X: {i}\n" for i in range(103))
    rules, warnings = parse_headers(text)
    # the rule open when the limit is hit is kept, as in Cloudflare's parser: 101
    assert rules is not None and len(rules["rules"]) == 101
    assert warnings == [
        RuleWarning("Maximum number of rules supported is 100. Skipping remaining 5 lines of file.")
    ]


def test_nothing_valid_gives_no_header_rules() -> None:
    assert parse_headers("\n# only comments\n") == (None, [])
    assert parse_headers("/a\n/b")[0] is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "/"),
        ("a", "/a"),
        ("//double", "//double"),
        ("/a/./b/../c/%2e%2E/d", "/a/d"),
        ("/..", ""),  # Node's URL; the WHATWG standard says "/"
        ("/a/..", "/"),
        ("/a/../..", ""),
        ("/a//..", "/a/"),
        ("/a/.", "/a/"),
        ('/sp ace"<>`{}|^\\', "/sp%20ace%22%3C%3E%60%7B%7D|^\\"),
        ("/tab\tnew\nline\r ", "/tabnewline"),
        ("/\x01\x7fé😀", "/%01%7F%C3%A9%F0%9F%98%80"),
        ("/lone\ud800", "/lone%EF%BF%BD"),
    ],
)
def test_pathname_as_new_url_gives_it(path: str, expected: str) -> None:
    assert extract_pathname(path) == expected


def test_search_and_hash_encoding() -> None:
    assert extract_pathname("/p?a b'\"`#f g`'", True, True) == "/p?a%20b'%22`#f%20g%60'"
    assert extract_pathname("/p?#", True, True) == "/p"


# -- compared with Cloudflare's JavaScript ---------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "node_modules" / ".bin" / "node"
BUNDLE = ROOT / "node_modules" / "miniflare" / "dist" / "src" / "index.js"

# Copies the parsers out of miniflare's bundle (constants through constructHeaders) and runs them
# on the cases given as JSON on stdin, as miniflare's assets plugin calls them.
RUNNER = r"""
import { readFileSync } from "node:fs";
const bundle = readFileSync(process.argv[2], "utf8");
const start = bundle.indexOf("// ../workers-shared/utils/configuration/constants.ts");
const headersAt = bundle.indexOf("function constructHeaders(", start);
const end = bundle.indexOf("\n}\n", headersAt) + 3;
if (start < 0 || headersAt < 0 || end < 3) throw new Error("parsers not found in the bundle");
const api = new Function(
  "var __esm = (fn, res) => function () {" +
    " return fn && (res = (0, fn[Object.keys(fn)[0]])(fn = 0)), res; };\n" +
    bundle.slice(start, end) +
    "\ninit_constants13(); init_validateURL(); init_parseHeaders(); init_parseRedirects();" +
    "\nreturn { parseRedirects, parseHeaders, constructRedirects, constructHeaders };",
)();
const logger = { debug() {}, log() {}, info() {}, warn() {}, error() {} };
const cases = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(cases.map(({ kind, text, htmlHandling }) => {
  if (kind === "redirects") {
    const redirects = api.parseRedirects(text, { htmlHandling: htmlHandling ?? undefined });
    const built = api.constructRedirects({ redirects, logger }).redirects;
    return { rules: built ?? null, invalid: redirects.invalid };
  }
  const headers = api.parseHeaders(text);
  return { rules: api.constructHeaders({ headers, logger }).headers ?? null, invalid: headers.invalid };
})));
"""


def run_javascript(tmp_path: Path, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not (NODE.exists() and BUNDLE.exists()):
        missing("node_modules (node, miniflare) is not installed: run scripts/setup")
    runner = tmp_path / "parsers.mjs"
    runner.write_text(RUNNER)
    done = subprocess.run(
        [str(NODE), str(runner), str(BUNDLE)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def run_python(case: dict[str, Any]) -> dict[str, Any]:
    rules: Any
    if case["kind"] == "redirects":
        rules, warnings = parse_redirects(case["text"], case["htmlHandling"])
    else:
        rules, warnings = parse_headers(case["text"])
    invalid = []
    for w in warnings:
        entry: dict[str, Any] = {"message": w.message}
        if w.line is not None:
            entry["line"] = w.line
        if w.line_number is not None:
            entry["lineNumber"] = w.line_number
        invalid.append(entry)
    return {"rules": rules, "invalid": invalid}


def rule_order(rules: dict[str, Any] | None) -> list[list[str]]:
    """Paths in order (dynamic redirects match in order). The order of header names is not
    compared: JavaScript lists integer-like keys ("4: x") first, and it sets the same headers."""
    return [list(rules.get(key, {})) for key in ("staticRules", "rules")] if rules else []


HAND_CASES: list[dict[str, Any]] = [
    {"kind": "redirects", "text": text, "htmlHandling": html}
    for html in (None, "none", "drop-trailing-slash")
    for text in (
        "/a /b\n/a /c 301\n/blog/* /posts/:splat 301\n/after /x\n# c\n\n",
        "/* /index.html 200\n/ /index\n/x/ /x/index.html 301\n/y/* /y/index.htm",
        "/p https://e.com/a 200\n/p /b 200\nfoo bar\nhttp://e.com /x\nhttps://e.com/x /y",
        "/s /t 0x12d\n/u /v 3.01e2\n/w /x 0b100101101\n/n /m Infinity\n/e /f  \n/g /h 1e3",
        "/q /r?x=1&y=2#frag 308\n/sp /a%20b\n/dots/../x /./y/../z\n/ü /é?ü#ü",
        "  /indented\t/tabs\t307  # trailing comment\r\n/crlf /x\r\n#/commented /x",
        "/:a /b\n/:1 /c\n/x:y /d\n/*/* /e\n/a*b /f\n/https://e.com /g",
    )
] + [
    {"kind": "headers", "text": text, "htmlHandling": None}
    for text in (
        HEADERS,
        "X: 1\n/a\n  A: 1\n  a: 2\n  ! B\n  !C\n  ! \n/b\n/c*/*\n  D: 1\n/d/*/:splat\n/e\n  E: 1",
        "/a\n  Bad Name: 1\n  : v\n  K:\n  words\nhttps://e.com:1/x\nftp://e/x\nhttps://e.com\n  F: 1",
        "/a?x#y\n  A: 1\n/b/../a\n  B: 2\nX-Url:https://e.com\n  C: 3\n/c\n  V: a:b:c",
        "".join(f"/p{i}\n  X: {i}\n" for i in range(105)),
    )
]

ALPHABET = [
    "/", "/a", "/b/", "*", ":id", ":splat", ":1", "..", ".", "%2e", "%2E", "?", "#", "?q=1",
    "#h", " ", "\t", "  ", "ü", "😀", "\u00a0", "\u2028", "\ufeff", "\x0b", "\x01", "\r",
    "https://", "https://e.com", "https://e.com:8080", "http://x", "index", "index.html",
    "/index", "/index.html", "200", "301", "302", "404", "0x12d", "abc", "# c", "!", "! ",
    ":", ": ", "X-A", "x-a", "Link", "\\", "\"", "<", "`", "{", "^",
]  # fmt: skip


def random_cases(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        lines = [
            "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 7)))
            for _ in range(rng.randint(0, 12))
        ]
        kind = "redirects" if index % 2 else "headers"
        html = rng.choice([None, "none", "auto-trailing-slash"])
        cases.append({"kind": kind, "text": "\n".join(lines), "htmlHandling": html})
    return cases


@pytest.mark.compat
def test_the_same_rules_and_warnings_as_cloudflares_javascript(tmp_path: Path) -> None:
    cases = HAND_CASES + random_cases(seed=7, count=600)
    expected = run_javascript(tmp_path, cases)
    for case, javascript in zip(cases, expected, strict=True):
        python = run_python(case)
        assert python["rules"] == javascript["rules"], case
        assert rule_order(python["rules"]) == rule_order(javascript["rules"]), case
        assert python["invalid"] == javascript["invalid"], case


@pytest.mark.compat
def test_the_same_pathnames_as_javascripts_url(tmp_path: Path) -> None:
    rng = random.Random(11)
    paths = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8))) for _ in range(800)]
    cases = [
        {"kind": "redirects", "text": f"/x {path.replace(' ', '')}", "htmlHandling": None}
        for path in paths
        if path and not any(c in path for c in " \t\u00a0\u2028\ufeff\x0b\r")
    ]
    expected = run_javascript(tmp_path, cases)
    for case, javascript in zip(cases, expected, strict=True):
        assert run_python(case) == javascript, case
