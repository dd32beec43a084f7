"""Validating a Worker upload (DESIGN §3): metadata, module names and types, dates, flags, size.

Pure functions: the API layer hands over the parsed multipart parts; nothing here touches storage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from mayfly import surface
from mayfly.errors import ValidationError
from mayfly.model import ModuleUpload
from mayfly.services.core import strict_json

# The newest date the pinned workerd (1.20261117.1) supports; newer dates are clamped to it.
MAX_COMPATIBILITY_DATE = "2026-11-24"
# A Worker uploaded without a date (wrangler's draft Worker for `secret put`) gets this one.
DEFAULT_COMPATIBILITY_DATE = "2025-01-01"
# The oldest date workerd accepts: it refuses years outside 2000-2999 ("Invalid compatibility
# date"), and the Worker would then answer every request with a 500.
MIN_COMPATIBILITY_DATE = "2000-01-01"

ALLOWED_FLAGS = frozenset(
    {
        "nodejs_compat",
        "nodejs_compat_v2",
        "no_nodejs_compat_v2",
        "nodejs_als",
        "streams_enable_constructors",
        "transformstream_enable_standard_constructor",
        "url_standard",
        "url_original",
        "global_navigator",
        "no_global_navigator",
        "formdata_parser_supports_files",
        "fetch_refuses_unknown_protocols",
        "global_fetch_strictly_public",
        "web_socket_compression",
        "no_minimal_subrequests",
        "rpc",
        "allow_custom_ports",
        "expose_global_message_channel",
        "enable_request_signal",
        "assets_navigation_prefers_asset_serving",
        "assets_navigation_has_no_effect",
    }
)

# Each flag with its opposite ($compatEnableFlag / $compatDisableFlag of one field in workerd's
# compatibility-date.capnp), for the flags allowed above: workerd refuses a Worker that names both
# ("Compatibility flags are mutually contradictory").
FLAG_PAIRS: tuple[tuple[str, str], ...] = (
    ("formdata_parser_supports_files", "formdata_parser_converts_files_to_strings"),
    ("fetch_refuses_unknown_protocols", "fetch_treats_unknown_protocols_as_http"),
    ("streams_enable_constructors", "streams_disable_constructors"),
    ("minimal_subrequests", "no_minimal_subrequests"),
    ("url_standard", "url_original"),
    ("global_navigator", "no_global_navigator"),
    ("transformstream_enable_standard_constructor", "transformstream_disable_standard_constructor"),
    ("web_socket_compression", "no_web_socket_compression"),
    ("nodejs_compat", "no_nodejs_compat"),
    ("nodejs_als", "no_nodejs_als"),
    ("rpc", "no_rpc"),
    ("nodejs_compat_v2", "no_nodejs_compat_v2"),
    ("global_fetch_strictly_public", "global_fetch_private_origin"),
    ("allow_custom_ports", "ignore_custom_ports"),
    ("assets_navigation_prefers_asset_serving", "assets_navigation_has_no_effect"),
    ("enable_request_signal", "disable_request_signal"),
    ("expose_global_message_channel", "no_expose_global_message_channel"),
)

MODULE_TYPES = {
    "application/javascript+module": "esm",
    "text/javascript+module": "esm",
    "application/javascript": "cjs",
    "text/javascript": "cjs",
    "application/wasm": "wasm",
    "application/octet-stream": "data",
    "text/plain": "text",
    "application/json": "json",
    "application/source-map": "sourcemap",
}
EXECUTABLE = {"esm", "cjs"}

BINDING_TYPES = {
    "plain_text",
    "json",
    "secret_text",
    "kv_namespace",
    "d1",
    "inherit",
    "assets",
    "r2_bucket",
    "service",
}
BINDING_NAME_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,63}$")
# Cloudflare's environment-variable limits (developers.cloudflare.com/workers/platform/limits/
# #environment-variables): at most 128 per Worker, plain text, JSON and secrets counted together
# (the paid plan's figure), each at most 5 KB.
ENV_VAR_TYPES = ("plain_text", "json", "secret_text")
MAX_ENV_VARS = 128
MAX_ENV_VAR_BYTES = 5 * 1024
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Module:
    """A module of a version: its name, its kind (esm, cjs, text, data, wasm, json, sourcemap)."""

    name: str
    kind: str
    data: bytes


@dataclass
class UploadPlan:
    """A validated upload, ready to be stored as a version."""

    main_module: str
    modules: list[Module]
    compatibility_date: str
    compatibility_flags: list[str]
    bindings: list[dict[str, Any]]
    keep_bindings: list[str]
    annotations: dict[str, str]
    messages: list[str] = field(default_factory=list)
    assets: Any = (
        None  # metadata.assets as sent ({jwt, config}); resolved against the session later
    )

    @property
    def has_worker(self) -> bool:
        return bool(self.main_module)

    @property
    def size(self) -> int:
        return sum(len(m.data) for m in self.modules)


def parse_metadata(raw: str | bytes | None) -> dict[str, Any]:
    if raw is None:
        raise ValidationError(
            "The upload has no `metadata` part (a JSON object naming main_module)."
        )
    data = strict_json.loads(raw, "The `metadata` part")
    if not isinstance(data, dict):
        raise ValidationError("The `metadata` part must be a JSON object.")
    return data


# The Worker Loader lets a module of the upload take a built-in's specifier ("cloudflare:workers",
# "node:fs") and then serves it to every import of that name, the platform's prelude included
# (runtime/tenant.js); and runtime/tenant.js adds its own modules under this directory.
BUILTIN_SPECIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
RESERVED_DIRECTORY = "__mayfly__"


def check_module_name(name: str) -> str:
    """The module's name as the runtime resolves it: `./` segments dropped (wrangler names the
    modules its bundle imports `./<hash>-add.wasm`, and Cloudflare serves them as
    `<hash>-add.wasm`, next to the main module); empty and `..` segments are refused."""
    if not name or len(name) > 512:
        raise ValidationError(f"Module name {name!r} must be 1-512 characters.")
    if name.startswith("/") or "\\" in name or "\x00" in name:
        raise ValidationError(f"Module name {name!r} must be a relative path inside the upload.")
    if BUILTIN_SPECIFIER.match(name):
        raise ValidationError(
            f"Module name {name!r} looks like a built-in module's specifier (scheme:name, as in "
            "node:fs or cloudflare:workers); name modules by their path in the upload."
        )
    parts = name.split("/")
    kept = [p for p in parts if p != "."]
    if not kept or any(p in ("", "..") for p in kept):
        raise ValidationError(
            f"Module name {name!r} must not contain empty or '..' segments "
            "(modules cannot escape the upload)."
        )
    if kept[0] == RESERVED_DIRECTORY:
        raise ValidationError(
            f"Module name {name!r} is under {RESERVED_DIRECTORY}/, which the platform keeps for "
            "its own modules; rename the directory."
        )
    return "/".join(kept)


def module_kind(module: ModuleUpload, main_module: str) -> str:
    content_type = module.content_type.split(";")[0].strip().lower()
    if content_type in MODULE_TYPES:
        return MODULE_TYPES[content_type]
    if content_type in ("", "application/x-www-form-urlencoded"):
        # A part without a declared type: the main module is an ES module, others by extension.
        if module.name == main_module or module.name.endswith((".js", ".mjs")):
            return "esm"
        if module.name.endswith(".cjs"):
            return "cjs"
        if module.name.endswith(".wasm"):
            return "wasm"
        if module.name.endswith(".json"):
            return "json"
        if module.name.endswith(".map"):
            return "sourcemap"
        return "data"
    if content_type == "text/x-python":
        raise ValidationError(
            f"Module {module.name!r}: Mayfly does not run Python Workers (python_workers); write "
            "the Worker in JavaScript or TypeScript (an ES module exporting a fetch handler)."
        )
    raise ValidationError(
        f"Module {module.name!r} has an unsupported content type {module.content_type!r}; "
        f"use one of {', '.join(sorted(MODULE_TYPES))}."
    )


def check_compatibility_date(value: Any, messages: list[str], today: str | None = None) -> str:
    """The date to run with. workerd refuses one before 2000, one past the newest its build
    knows and (the Worker Loader validates as `CODE_VERSION`) one after today: newer dates are
    clamped to the newest it would take, with a message."""
    if value in (None, ""):
        return DEFAULT_COMPATIBILITY_DATE
    if not isinstance(value, str) or not DATE_RE.match(value):
        raise ValidationError(f"compatibility_date {value!r} is not a date like 2025-01-01.")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(f"compatibility_date {value!r} is not a valid date.") from exc
    if value < MIN_COMPATIBILITY_DATE:
        raise ValidationError(
            f"compatibility_date {value} is older than the runtime supports; "
            f"use {MIN_COMPATIBILITY_DATE} or later."
        )
    newest = min(MAX_COMPATIBILITY_DATE, today or MAX_COMPATIBILITY_DATE)
    if value > newest:
        messages.append(
            f"compatibility_date {value} is newer than this runtime supports; using {newest}."
        )
        return newest
    return value


def check_flags(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
        raise ValidationError("compatibility_flags must be a list of strings.")
    refused = [f for f in value if f not in ALLOWED_FLAGS]
    if refused:
        raise ValidationError(
            f"Compatibility flag(s) not allowed on this platform: {', '.join(refused)}. "
            f"Allowed: {', '.join(sorted(ALLOWED_FLAGS))}."
        )
    named = set(value)
    for enable, disable in FLAG_PAIRS:
        if enable in named and disable in named:
            raise ValidationError(
                f"Compatibility flags {enable} and {disable} contradict each other; keep one."
            )
    return list(dict.fromkeys(value))


def check_env_var_size(name: str, kind: str, value: Any) -> None:
    """A plain-text or secret's text (UTF-8), or a JSON var's value serialised, up to 5 KiB."""
    if kind == "json":
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    else:
        size = len(str(value).encode("utf-8", "surrogatepass"))
    if size > MAX_ENV_VAR_BYTES:
        what = "Secret" if kind == "secret_text" else "Environment variable"
        raise ValidationError(
            f"{what} {name!r} is {size} bytes; an environment variable or secret may be at most "
            f"{MAX_ENV_VAR_BYTES} bytes (5 KiB), as on Cloudflare."
        )


def check_env_var_count(bindings: list[dict[str, Any]]) -> None:
    """The bindings a version would have: at most 128 plain-text, JSON and secret ones."""
    count = sum(1 for b in bindings if b.get("type") in ENV_VAR_TYPES)
    if count > MAX_ENV_VARS:
        raise ValidationError(
            f"The Worker would have {count} environment variables and secrets; at most "
            f"{MAX_ENV_VARS} are allowed per Worker (plain text, JSON and secrets together, as "
            "on Cloudflare). Remove some, or combine them into one JSON variable."
        )


def check_bindings(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError("metadata.bindings must be a list.")
    seen: set[str] = set()
    out = []
    for binding in value:
        if not isinstance(binding, dict):
            raise ValidationError("Each binding must be an object with a name and a type.")
        name, kind = binding.get("name"), binding.get("type")
        if not isinstance(name, str) or not BINDING_NAME_RE.match(name):
            raise ValidationError(f"Binding name {name!r} is not a valid identifier.")
        if name in seen:
            raise ValidationError(f"Binding {name!r} is declared twice.")
        seen.add(name)
        refusal = surface.refused_binding(str(kind), name)
        if refusal:
            raise ValidationError(refusal)
        if kind not in BINDING_TYPES:
            raise ValidationError(
                f"Binding {name!r} has type {kind!r}, which this platform does not support "
                f"(supported: {', '.join(sorted(BINDING_TYPES))})."
            )
        if kind in ("plain_text", "secret_text") and not isinstance(binding.get("text"), str):
            raise ValidationError(f"Binding {name!r} ({kind}) needs a string `text`.")
        if kind == "json" and "json" not in binding:
            raise ValidationError(f"Binding {name!r} (json) needs a `json` value.")
        if kind in ENV_VAR_TYPES:
            check_env_var_size(name, kind, binding["json" if kind == "json" else "text"])
        if kind == "kv_namespace" and not isinstance(binding.get("namespace_id"), str):
            raise ValidationError(f"Binding {name!r} (kv_namespace) needs a `namespace_id`.")
        if kind == "d1" and not isinstance(binding.get("id"), str):
            raise ValidationError(f"Binding {name!r} (d1) needs an `id`: the database's UUID.")
        if kind == "r2_bucket" and not isinstance(binding.get("bucket_name"), str):
            raise ValidationError(f"Binding {name!r} (r2_bucket) needs a `bucket_name`.")
        if kind == "r2_bucket" and binding.get("jurisdiction") not in (None, "", "default"):
            raise ValidationError(f"Binding {name!r}: R2 jurisdictions are not supported.")
        if kind == "service":
            check_service_binding(name, binding)
        out.append(binding)
    check_env_var_count(out)
    return out


ENTRYPOINT_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,127}$")


def check_service_binding(name: str, binding: dict[str, Any]) -> None:
    service, entrypoint = binding.get("service"), binding.get("entrypoint")
    if not isinstance(service, str) or not service:
        raise ValidationError(f"Binding {name!r} (service) needs a `service`: a Worker's name.")
    if entrypoint is not None and (
        not isinstance(entrypoint, str) or not ENTRYPOINT_RE.match(entrypoint)
    ):
        raise ValidationError(
            f"Binding {name!r}: entrypoint {entrypoint!r} must name an exported class."
        )


def plan_upload(
    metadata: dict[str, Any],
    parts: list[ModuleUpload],
    max_bytes: int,
    today: str | None = None,
) -> UploadPlan:
    """Validate everything about an upload that does not need the database (`today`: the UTC
    date, ISO; no compatibility date after it is kept)."""
    messages: list[str] = []
    # Before anything else: nothing of a Worker Mayfly cannot run is stored or goes live.
    for key, value in metadata.items():
        refusal = surface.refused_metadata(key, value)
        if refusal:
            raise ValidationError(refusal)
    main_module = metadata.get("main_module")
    if main_module is None and isinstance(metadata.get("body_part"), str):
        # Service-worker syntax: the script (wrangler sends it as CommonJS) is the main module;
        # the data plane serves the fetch listeners it adds (runtime/tenant.js).
        main_module = metadata["body_part"]
    assets = metadata.get("assets")
    if main_module is None and assets is not None and not parts:
        main_module = ""  # an assets-only Worker: no code at all
    elif not isinstance(main_module, str) or not main_module:
        raise ValidationError("metadata.main_module must name the entry module.")
    if main_module:
        main_module = check_module_name(main_module)
    parts = [replace(part, name=check_module_name(part.name)) for part in parts]
    seen: set[str] = set()
    for part in parts:
        if part.name in seen:
            raise ValidationError(f"Module {part.name!r} appears twice in the upload.")
        seen.add(part.name)
    if main_module and main_module not in seen:
        raise ValidationError(
            f"metadata.main_module is {main_module!r}, but no part of the upload has that name."
        )
    total = sum(len(p.data) for p in parts)
    if total > max_bytes:
        raise ValidationError(f"The upload is {total} bytes; the limit is {max_bytes} bytes.")
    main = next((p for p in parts if p.name == main_module), None)
    if main is not None and module_kind(main, main_module) not in EXECUTABLE:
        raise ValidationError(f"The main module {main_module!r} must be JavaScript.")
    typed = [Module(p.name, module_kind(p, main_module), p.data) for p in parts]
    for module in typed:
        if module.kind == "json":
            try:
                json.loads(module.data)
            except ValueError as exc:
                raise ValidationError(f"Module {module.name!r} is not valid JSON.") from exc
        if module.kind in ("esm", "cjs", "text"):
            try:
                module.data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationError(f"Module {module.name!r} is not UTF-8 text.") from exc
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ValidationError("metadata.annotations must be an object.")
    keep = metadata.get("keep_bindings") or []
    if not isinstance(keep, list):
        raise ValidationError("metadata.keep_bindings must be a list of binding types.")
    return UploadPlan(
        main_module=main_module,
        modules=typed,
        compatibility_date=check_compatibility_date(
            metadata.get("compatibility_date"), messages, today
        ),
        compatibility_flags=check_flags(metadata.get("compatibility_flags")),
        bindings=check_bindings(metadata.get("bindings")),
        keep_bindings=[str(k) for k in keep],
        annotations={str(k): str(v) for k, v in annotations.items()},
        messages=messages,
        assets=assets,
    )
