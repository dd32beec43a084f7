"""Static assets: an upload session for the manifest, then only the files the server asks for
(wrangler-assets.md §4–5: AS1, AS2).

AS1 answers the hashes the account does not have yet, in buckets, with an upload token; each
bucket is one multipart request authorised by that token (not the API token), each part the
base64 of one file. The answer that completes the set carries the completion token the version
upload attaches (`metadata.assets.jwt`). When nothing is missing, AS1's token is already it.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any

from mayfly.sdk.errors import APIUnreachable, MayflyAPIError, SDKError
from mayfly.sdk.worker_models import AssetSource, AssetsUploaded, AssetUpload

if TYPE_CHECKING:
    from concurrent.futures import Future

    from mayfly.sdk.client import MayflyClient
    from mayfly.sdk.provisioning import Listener

MALFORMED = 0
CONCURRENCY = 3  # buckets in flight, as wrangler
ATTEMPTS = 3
BACKOFF = 1.0


class AssetUploadError(SDKError):
    code = "assets_upload_failed"


class AssetsAPI:
    def __init__(self, client: MayflyClient) -> None:
        self.client = client

    def open_session(
        self, account_id: str, script: str, manifest: dict[str, dict[str, Any]]
    ) -> tuple[str, list[list[str]]]:
        """AS1: (token, buckets of missing hashes). With no bucket the token completes."""
        result = self.client.call(
            "POST",
            f"/accounts/{account_id}/workers/scripts/{script}/assets-upload-session",
            json={"manifest": manifest},
        )
        buckets = result.get("buckets") if isinstance(result, dict) else None
        token = result.get("jwt") if isinstance(result, dict) else None
        if not isinstance(token, str) or not token or not isinstance(buckets, list):
            raise MayflyAPIError(MALFORMED, "The asset upload session has no jwt or buckets.", 200)
        return token, [[str(h) for h in bucket] for bucket in buckets]

    def upload_bucket(
        self, account_id: str, upload_token: str, files: list[AssetSource]
    ) -> str | None:
        """AS2: one bucket; returns the completion token if this upload completed the set."""
        parts = [
            (f.hash, (f.hash, base64.b64encode(f.source.read_bytes()), f.content_type))
            for f in files
        ]
        result = self.client.call(
            "POST",
            f"/accounts/{account_id}/workers/assets/upload",
            params={"base64": "true"},
            files=parts,
            headers={"authorization": f"Bearer {upload_token}"},
        )
        token = result.get("jwt") if isinstance(result, dict) else None
        return token if isinstance(token, str) and token else None


def upload_assets(
    client: MayflyClient,
    account_id: str,
    script: str,
    assets: AssetUpload,
    listener: Listener,
    *,
    concurrency: int = CONCURRENCY,
) -> tuple[str, AssetsUploaded]:
    """Upload what the server is missing; returns (completion token, counts)."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    api = client.assets
    token, buckets = api.open_session(account_id, script, assets.manifest())
    by_hash: dict[str, AssetSource] = {}
    for source in assets.files:
        by_hash.setdefault(source.hash, source)
    unknown = [h for bucket in buckets for h in bucket if h not in by_hash]
    if unknown:
        raise AssetUploadError(
            f"The server asked for {len(unknown)} file(s) that are not in the manifest "
            f"({unknown[0]}, …); deploy again."
        )
    total = sum(len(bucket) for bucket in buckets)
    counts = AssetsUploaded(len(assets.files), total, len(assets.files) - total)
    if not buckets:
        listener.notice(f"Assets: {len(assets.files)} files, all already uploaded.")
        return token, counts
    task = f"Uploading {total} new or changed assets ({counts.already_uploaded} already uploaded)"
    listener.begin(task, total)
    started = time.perf_counter()
    completion: str | None = None
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        pending: dict[Future[str | None], int] = {}
        for bucket in buckets:
            files = [by_hash[h] for h in bucket]
            pending[pool.submit(_upload_with_retries, api, account_id, token, files)] = len(files)
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                size = pending.pop(future)
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    raise error
                completion = future.result() or completion
                done += size
                listener.advance(done, total)
    listener.end(task, time.perf_counter() - started)
    if completion is None:
        raise AssetUploadError(
            "Every asset was uploaded but the server never confirmed the set; deploy again "
            "(files already uploaded are not sent twice)."
        )
    return completion, counts


def _upload_with_retries(
    api: AssetsAPI, account_id: str, token: str, files: list[AssetSource]
) -> str | None:
    """Network trouble and 5xx are retried; a 4xx is the answer."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return api.upload_bucket(account_id, token, files)
        except APIUnreachable:
            if attempt == ATTEMPTS:
                raise
        except MayflyAPIError as exc:
            if exc.status < 500 or attempt == ATTEMPTS:
                raise
        time.sleep(BACKOFF * attempt)
    raise AssertionError("unreachable")  # pragma: no cover
