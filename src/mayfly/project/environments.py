"""`[env.<name>]` sections, resolved with wrangler's inheritance rules.

With `--env NAME` the effective configuration is the top level overlaid with `env.NAME`:
- most keys (main, compatibility_date, compatibility_flags, account_id, assets, …) are inherited
  from the top level unless the environment sets them;
- `name` is inherited as `<name>-<env>` unless the environment sets its own;
- bindings (`vars`, `kv_namespaces`, …) are not inherited: an environment that wants them declares
  them again, and a warning says so when only the top level has them.
A configuration with `env` sections but none called NAME is an error; one without any `env` section
uses the top level (with the suffixed name) and warns, as wrangler does.
"""

from __future__ import annotations

from typing import Any

# wrangler's non-inheritable keys (workers-utils/src/config/validation.ts, `notInheritable`).
NOT_INHERITED = frozenset(
    {
        "vars",
        "secrets",
        "define",
        "durable_objects",
        "workflows",
        "kv_namespaces",
        "send_email",
        "queues",
        "r2_buckets",
        "d1_databases",
        "vectorize",
        "hyperdrive",
        "services",
        "analytics_engine_datasets",
        "dispatch_namespaces",
        "mtls_certificates",
        "tail_consumers",
        "unsafe",
        "browser",
        "ai",
        "images",
        "version_metadata",
        "ratelimits",
    }
)
# Keys that only mean something at the top level.
TOP_LEVEL_ONLY = frozenset({"env", "$schema", "send_metrics", "keep_vars"})


def select_environment(
    raw: dict[str, Any], env: str | None
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The effective configuration for `env`, with (errors, warnings)."""
    errors: list[str] = []
    warnings: list[str] = []
    sections = raw.get("env")
    if sections is not None and not isinstance(sections, dict):
        errors.append("`env` must be a table of environments ([env.staging], …).")
        sections = None
    top = {k: v for k, v in raw.items() if k != "env"}
    if env is None:
        return top, errors, warnings
    section = (sections or {}).get(env)
    if section is None:
        if sections:
            errors.append(
                f"no environment named {env!r}; the configuration defines "
                f"{', '.join(repr(name) for name in sorted(sections))}. Add an [env.{env}] section "
                "or pick one of those."
            )
        else:
            warnings.append(
                f"no [env.{env}] section; using the top-level configuration "
                f"with the Worker named {_suffixed(top.get('name'), env)!r}."
            )
        effective = dict(top)
        if isinstance(top.get("name"), str) and top["name"]:
            effective["name"] = _suffixed(top["name"], env)
        return effective, errors, warnings
    if not isinstance(section, dict):
        errors.append(f"`env.{env}` must be a table.")
        return top, errors, warnings
    effective = {k: v for k, v in top.items() if k not in NOT_INHERITED}
    for key, value in section.items():
        if key in TOP_LEVEL_ONLY:
            warnings.append(f"`env.{env}.{key}` only applies at the top level; ignored.")
            continue
        effective[key] = value
    if "name" not in section and isinstance(top.get("name"), str) and top["name"]:
        effective["name"] = _suffixed(top["name"], env)
    for key in sorted(NOT_INHERITED & set(top)):
        if key not in section:
            warnings.append(
                f"`{key}` exists at the top level but not in [env.{env}]; it is not inherited by "
                f"environments, so the {env} Worker gets none. Repeat it under [env.{env}] if "
                "it should."
            )
    return effective, errors, warnings


def _suffixed(name: Any, env: str) -> str:
    return f"{name}-{env}" if isinstance(name, str) and name else f"<name>-{env}"
