"""`mayfly tail`: a Worker's live logs, as they happen (W22, W23 and the trace-v1 WebSocket)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from mayfly.cli.options import ApiArgs, WorkerArgs, client_env, worker_account_options
from mayfly.cli.output import Output
from mayfly.sdk import AccountInfo, MayflyClient, SDKError
from mayfly.sdk.tail import STATUS_OUTCOMES, events, filters

OUTCOMES = {
    "ok": "Ok",
    "canceled": "Canceled",
    "exception": "Exception Thrown",
    "exceededCpu": "Exceeded CPU Limit",
    "exceededMemory": "Exceeded Memory",
    "unknown": "Unknown",
}


def _header(value: str) -> tuple[str, str]:
    key, sep, query = value.partition(":")
    if not sep or not key.strip():
        raise click.BadParameter(f"{value!r} is not KEY:VALUE.")
    return key.strip(), query.strip()


def _when(milliseconds: Any) -> str:
    if not isinstance(milliseconds, int | float):
        return "-"
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def pretty_lines(event: dict[str, Any]) -> list[str]:
    """One event as wrangler's pretty format has it: a headline, then logs and exceptions."""
    outcome = OUTCOMES.get(str(event.get("outcome")), str(event.get("outcome")))
    detail = _dict(event.get("event"))
    request = _dict(detail.get("request"))
    when = _when(event.get("eventTimestamp"))
    if request:
        response = _dict(detail.get("response"))
        status = f" ({response['status']})" if "status" in response else ""
        head = (
            f"{request.get('method', '?')} {request.get('url', '?')} - {outcome}{status} @ {when}"
        )
    elif "cron" in detail:
        head = f'"{detail["cron"]}" @ {when} - {outcome}'
    else:
        head = f"Event @ {when} - {outcome}"
    lines = [head]
    for log in event.get("logs") or []:
        message = log.get("message") if isinstance(log, dict) else log
        parts = message if isinstance(message, list) else [message]
        text = " ".join(p if isinstance(p, str) else json.dumps(p) for p in parts)
        level = log.get("level", "log") if isinstance(log, dict) else "log"
        lines.append(f"  ({level}) {text}")
    for error in event.get("exceptions") or []:
        if isinstance(error, dict):
            lines.append(f"  (error) {error.get('name', 'Error')}: {error.get('message', '')}")
    return lines


@click.command()
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "pretty"]),
    help="json: one JSON object (trace item) per line; pretty: a readable summary. "
    "Default: pretty on a terminal, json otherwise (and with --json).",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(sorted(STATUS_OUTCOMES)),
    help="Only requests with this outcome (repeatable).",
)
@click.option("--method", "methods", multiple=True, help="Only this HTTP method (repeatable).")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="KEY:VALUE",
    help="Only requests with this header (repeatable).",
)
@click.option("--search", help="Only events whose logs or exceptions contain this text.")
@click.option(
    "--max-events",
    type=click.IntRange(min=1),
    help="Stop after this many events (for agents: bounded output).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds, events or not.",
)
@worker_account_options
def tail(
    output_format: str | None,
    statuses: tuple[str, ...],
    methods: tuple[str, ...],
    headers: tuple[str, ...],
    search: str | None,
    max_events: int | None,
    timeout: float | None,
    worker: WorkerArgs,
    api: ApiArgs,
) -> None:
    """Stream the Worker's live logs: each request's console output, exceptions and outcome.

    Runs until Ctrl-C (the tail session is deleted on the way out), or until --max-events
    events or --timeout seconds. Nothing is stored: only requests made while tailing are shown.

    \b
    --json (or --format json) prints one trace item per line: outcome,
      scriptName, logs [{level, message, timestamp}], exceptions [{name,
      message}], eventTimestamp, event {request {url, method},
      response {status}}. Exit status 0 when the stream ends normally.
    """
    out = api.output()
    as_lines = (
        api.as_json
        or output_format == "json"
        or (output_format is None and not sys.stdout.isatty())
    )
    with out.errors():
        parsed_headers = tuple(_header(h) for h in headers)
        target = worker.load(out)
        wanted = filters(statuses, methods, search, parsed_headers)

        def action(authed: MayflyClient, account: AccountInfo) -> int:
            return stream(authed, account, target.name, wanted, out, as_lines, max_events, timeout)

        ran = api.run(out, action, account_id=target.account_id)
        out.notice(f"{ran.value} event{'s' if ran.value != 1 else ''} received.")


def stream(
    authed: MayflyClient,
    account: AccountInfo,
    script: str,
    wanted: list[dict[str, Any]],
    out: Output,
    as_lines: bool,
    max_events: int | None,
    timeout: float | None,
) -> int:
    """Open a session, print its events, and always delete it afterwards."""
    session = authed.tails.create(account.id, script, wanted)
    count = 0
    try:
        connection = client_env().open_websocket(session.url)
        out.notice(f"Connected to {script}; waiting for logs… (Ctrl-C to stop)")
        try:
            for event in events(connection, max_events=max_events, timeout=timeout):
                count += 1
                if as_lines:
                    click.echo(json.dumps(event))
                else:
                    for line in pretty_lines(event):
                        click.echo(line)
                sys.stdout.flush()
        finally:
            connection.close()
    except KeyboardInterrupt:
        out.notice("Stopping tail…")
    finally:
        try:
            authed.tails.delete(account.id, script, session.id)
        except SDKError as exc:
            out.warn(f"Could not delete the tail session {session.id}: {exc.message}")
    return count
