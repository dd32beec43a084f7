"""A typed client for Mayfly's Cloudflare-compatible v4 API: one method per endpoint.

Provisioning, identity and the Worker upload live here; the other resources hang off the client:
`client.workers` (versions, deployments, secrets, delete), `client.kv`, `client.tails`,
`client.assets`. Every failure becomes an SDKError: MayflyAPIError(code, message, status) when the
API answered with an error envelope, APIUnreachable when it did not answer at all.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from mayfly.sdk.errors import MayflyAPIError, unreachable
from mayfly.sdk.models import (
    AccountInfo,
    AccountQuarantineInfo,
    Challenge,
    ClaimStatus,
    QuarantineInfo,
    TemporaryAccount,
    parse_time,
)
from mayfly.sdk.wire import (
    MALFORMED,
    RETRIES,
    A,
    Connections,
    retry_after,
    unwrap,
)

if TYPE_CHECKING:
    import httpx

    from mayfly.sdk.assets import AssetsAPI
    from mayfly.sdk.kv import KVAPI
    from mayfly.sdk.tail import TailsAPI
    from mayfly.sdk.worker_models import UploadResult, WorkerInfo, WorkerUpload
    from mayfly.sdk.workers import WorkersAPI

DEFAULT_API_URL = "http://localhost:8787"
API_PREFIX = "/client/v4"


def normalise_api_url(api_url: str) -> str:
    """`http://Host:8787/` and `http://host:8787/client/v4` both mean `http://host:8787`."""
    url = urlsplit(api_url.strip())
    scheme = url.scheme.lower()
    try:
        port = url.port
    except ValueError:
        port = -1
    if scheme not in ("http", "https") or not url.hostname or port == -1:
        raise ValueError(f"API URL {api_url!r} must be an http:// or https:// URL.")
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname  # lower-cased
    path = unquote(url.path).rstrip("/")
    if path.endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)]
    port_part = (
        f":{port}" if port is not None and port != {"http": 80, "https": 443}[scheme] else ""
    )
    return f"{scheme}://{host}{port_part}{path}"


class MayflyClient:
    """Synchronous client. `with_token()` shares the connections with a different token.

    Calls go through the standard library's http.client (mayfly/sdk/transport.py); `raw` and
    `request` (an httpx.Response) through httpx, imported then. A given `transport` or `http`
    client (tests, an app in-process), or a proxy in the environment, sends everything through
    httpx."""

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.api_url = normalise_api_url(api_url)
        self.token = token
        self._connections = Connections(self.api_url, timeout, transport, http)
        self._owns_connections = True

    def with_token(self, token: str) -> MayflyClient:
        other = copy.copy(self)
        other.token = token
        other._owns_connections = False
        return other

    def close(self) -> None:
        if self._owns_connections:
            self._connections.close()

    def __enter__(self) -> MayflyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- resources ------------------------------------------------------------------------------

    @property
    def workers(self) -> WorkersAPI:
        from mayfly.sdk.workers import WorkersAPI

        return WorkersAPI(self)

    @property
    def kv(self) -> KVAPI:
        from mayfly.sdk.kv import KVAPI

        return KVAPI(self)

    @property
    def tails(self) -> TailsAPI:
        from mayfly.sdk.tail import TailsAPI

        return TailsAPI(self)

    @property
    def assets(self) -> AssetsAPI:
        from mayfly.sdk.assets import AssetsAPI

        return AssetsAPI(self)

    # -- provisioning (no auth) -----------------------------------------------------------------

    def request_challenge(self) -> Challenge:
        """P1: a proof-of-work challenge."""
        from mayfly.sdk.pow import check_challenge  # hashlib: only when an account is made

        return check_challenge(self.call("POST", "/provisioning/previews/challenge", json={}))

    def create_temporary_account(
        self, challenge: Challenge, checkpoints: str, event_code: str | None = None
    ) -> TemporaryAccount:
        """P2: a temporary account from a solved challenge. Its API token is shown only here.

        The terms accepted are the ones the challenge named, else the server's /terms and
        /privacy (the body needs both fields; wrangler sends Cloudflare's). An event code travels
        as `eventCode`, the field wrangler's --event-code sends."""
        body: dict[str, Any] = {
            "termsOfService": challenge.terms_url or f"{self.api_url}/terms",
            "privacyPolicy": challenge.privacy_url or f"{self.api_url}/privacy",
            "acceptTermsOfService": "yes",
            "challengeToken": challenge.token,
            "solution": {"checkpoints": checkpoints},
        }
        if event_code:
            body["eventCode"] = event_code.strip()
        result = self.call("POST", "/provisioning/previews", json=body)
        try:
            account, claim = result["account"], result["claim"]
            return TemporaryAccount(
                id=str(account["id"]),
                name=str(account["name"]),
                api_token=str(account["apiToken"]),
                expires_at=parse_time(account["expiresAt"]),
                claim_url=str(claim["url"]),
                claim_expires_at=parse_time(claim["expiresAt"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MayflyAPIError(
                MALFORMED,
                "The temporary account response is missing required fields.",
                200,
            ) from exc

    def claim_status(self, account_id: str) -> ClaimStatus:
        """P3: unclaimed, claimed or expired; answers even after a claim or the deletion."""
        result = self.call("GET", f"/provisioning/previews/{account_id}")
        try:
            status = result["status"]
            if status not in ("unclaimed", "claimed", "expired"):
                raise ValueError(status)
            return ClaimStatus(
                id=str(result["id"]),
                name=str(result["name"]),
                status=status,
                expires_at=_optional_time(result.get("expiresAt")),
                claimed_at=_optional_time(result.get("claimedAt")),
                deleted_at=_optional_time(result.get("deletedAt")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MayflyAPIError(MALFORMED, "The claim status response is malformed.", 200) from exc

    # -- identity -------------------------------------------------------------------------------

    def list_accounts(self) -> list[AccountInfo]:
        """U3: every account the token reaches (all pages)."""
        found: list[AccountInfo] = []
        page = 1
        while True:
            body = self.envelope("GET", "/accounts", params={"page": page, "per_page": 50})
            items = body.get("result") or []
            found.extend(_account(item) for item in items)
            info = body.get("result_info") or {}
            total, per_page = info.get("total_count"), info.get("per_page")
            if not items or not isinstance(total, int) or not isinstance(per_page, int):
                return found
            if page * per_page >= total:
                return found
            page += 1

    def get_account(self, account_id: str) -> AccountInfo:
        return _account(self.call("GET", f"/accounts/{account_id}"))

    # -- Workers --------------------------------------------------------------------------------

    def upload_script(self, account_id: str, script: str, upload: WorkerUpload) -> UploadResult:
        """W9: store a version and deploy it (creates the Worker when it is new)."""
        files: list[tuple[str, tuple[str | None, bytes, str]]] = [
            ("metadata", (None, json.dumps(upload.metadata()).encode(), "application/json"))
        ]
        for module in upload.modules:
            files.append((module.name, (module.name, module.data, module.content_type)))
        body = self.envelope("PUT", f"/accounts/{account_id}/workers/scripts/{script}", files=files)
        result = body.get("result") or {}
        version_id = result.get("deployment_id") or result.get("id")
        if not isinstance(version_id, str):
            raise MayflyAPIError(MALFORMED, "The upload response has no version id.", 200)
        messages = tuple(
            str(m.get("message", m)) if isinstance(m, dict) else str(m)
            for m in body.get("messages") or []
        )
        url = result.get("url")
        from mayfly.sdk.worker_models import UploadResult  # only commands that upload need it

        return UploadResult(
            version_id=version_id, messages=messages, url=url if isinstance(url, str) else None
        )

    def get_worker(self, account_id: str, script: str) -> WorkerInfo:
        """W8: the Worker and its URL."""
        result = self.call("GET", f"/accounts/{account_id}/workers/workers/{script}")
        subdomain = result.get("subdomain") or {}
        url = subdomain.get("url")
        from mayfly.sdk.worker_models import WorkerInfo

        return WorkerInfo(
            name=str(result.get("name") or script),
            url=url if isinstance(url, str) else None,
            enabled=bool(subdomain.get("enabled", True)),
        )

    # -- transport (the resource APIs build on these) -------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """`result` of the envelope `path` (under /client/v4) answers."""
        return self.envelope(method, path, **kwargs).get("result")

    def envelope(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The whole envelope (for `result_info` and `messages`)."""
        plain = self._connections.plain()
        if plain is None or not plain.accepts(kwargs):
            return unwrap(self.request(method, path, **kwargs))
        url, headers = self._url(path, kwargs.pop("headers", None))
        return unwrap(
            self._retrying(
                lambda: plain.send(
                    method,
                    url,
                    headers,
                    params=kwargs.get("params"),
                    json_body=kwargs.get("json"),
                    content=kwargs.get("content"),
                    files=kwargs.get("files"),
                )
            )
        )

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A successful answer that is not an envelope (a KV value); errors still raise."""
        response = self.request(method, path, **kwargs)
        if not response.is_success:
            unwrap(response)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Through httpx: `path` is either under /client/v4 or, with a scheme, a full URL; 429/503
        that say when to come back are retried."""
        import httpx

        http = self._connections.httpx_client()
        url, headers = self._url(path, kwargs.pop("headers", None))

        def send() -> httpx.Response:
            try:
                return http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                raise unreachable(self.api_url, exc.__class__.__name__, exc) from exc

        return self._retrying(send)

    def _url(self, path: str, extra: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
        url = path if "://" in path else self.api_url + API_PREFIX + path
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return url, headers

    def _retrying(self, send: Callable[[], A]) -> A:
        for attempt in range(RETRIES + 1):
            response = send()
            wait = retry_after(response)
            if wait is None or attempt == RETRIES:
                return response
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def _optional_time(value: Any) -> datetime | None:
    return parse_time(value) if isinstance(value, str) else None


def _account(raw: Any) -> AccountInfo:
    if not isinstance(raw, dict) or "id" not in raw:
        raise MayflyAPIError(MALFORMED, "An account in the API's answer has no id.", 200)
    extra = raw.get("mayfly")
    if not isinstance(extra, dict):
        extra = {}
    kind = extra.get("kind")
    expires = extra.get("expires_at")
    return AccountInfo(
        id=str(raw["id"]),
        name=str(raw.get("name") or raw["id"]),
        kind=kind if kind in ("temporary", "permanent") else None,
        expires_at=parse_time(expires) if isinstance(expires, str) else None,
        quarantined=tuple(_quarantines(extra.get("quarantined"))),
        account_quarantine=_account_quarantine(extra.get("account_quarantine")),
    )


def _account_quarantine(raw: Any) -> AccountQuarantineInfo | None:
    """The account's own quarantine; None when there is none or this client cannot read it."""
    if not isinstance(raw, dict):
        return None
    try:
        return AccountQuarantineInfo(
            scripts=tuple(str(s) for s in raw.get("scripts") or ()),
            kind=str(raw.get("kind") or ""),
            reason=str(raw.get("reason") or ""),
            until=parse_time(raw["until"]),
            strikes=int(raw.get("strikes") or 1),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _quarantines(raw: Any) -> Iterator[QuarantineInfo]:
    """The account's quarantined Workers; entries this client cannot read are skipped."""
    for item in raw if isinstance(raw, list) else []:
        try:
            yield QuarantineInfo(
                script=str(item["script"]),
                version_id=str(item.get("version_id") or ""),
                kind=str(item.get("kind") or ""),
                reason=str(item.get("reason") or ""),
                until=parse_time(item["until"]),
                strikes=int(item.get("strikes") or 1),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
