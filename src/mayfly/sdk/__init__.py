"""A typed client for the Mayfly API (on which the CLI and the MCP server are built).

Imports nothing server-side (an import-linter contract checks it).
"""

from typing import TYPE_CHECKING

from mayfly.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from mayfly.sdk.assets import AssetUploadError, upload_assets
    from mayfly.sdk.client import DEFAULT_API_URL, MayflyClient, normalise_api_url
    from mayfly.sdk.credentials import (
        Credentials,
        LoginStore,
        Resolution,
        SavedLogin,
        TemporaryAccountCache,
        config_dir,
        resolve_credentials,
    )
    from mayfly.sdk.deploy import Deployer, namespace_title
    from mayfly.sdk.errors import (
        APIUnreachable,
        ChallengeUnsupported,
        CredentialsError,
        MayflyAPIError,
        SDKError,
    )
    from mayfly.sdk.models import AccountInfo, Challenge, ClaimStatus, TemporaryAccount
    from mayfly.sdk.provisioning import Listener, QuietListener, provision_temporary_account
    from mayfly.sdk.session import AccountSession, Ran, account_for
    from mayfly.sdk.tail import TailConnection, TailError, open_websocket
    from mayfly.sdk.worker_models import (
        AssetSource,
        AssetsUploaded,
        AssetUpload,
        Deployment,
        KVBinding,
        KVKey,
        KVNamespaceInfo,
        ProvisionedNamespace,
        SecretInfo,
        TailInfo,
        UploadModule,
        UploadResult,
        WorkerDeployment,
        WorkerInfo,
        WorkerUpload,
        WorkerVersion,
    )

# Each name is imported from its module on first use (mayfly/lazy_exports.py).
__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "assets": ("AssetUploadError", "upload_assets"),
        "client": ("DEFAULT_API_URL", "MayflyClient", "normalise_api_url"),
        "credentials": (
            "Credentials",
            "LoginStore",
            "Resolution",
            "SavedLogin",
            "TemporaryAccountCache",
            "config_dir",
            "resolve_credentials",
        ),
        "deploy": ("Deployer", "namespace_title"),
        "errors": (
            "APIUnreachable",
            "ChallengeUnsupported",
            "CredentialsError",
            "MayflyAPIError",
            "SDKError",
        ),
        "models": ("AccountInfo", "Challenge", "ClaimStatus", "TemporaryAccount"),
        "worker_models": (
            "AssetSource",
            "AssetsUploaded",
            "AssetUpload",
            "Deployment",
            "KVBinding",
            "KVKey",
            "KVNamespaceInfo",
            "ProvisionedNamespace",
            "SecretInfo",
            "TailInfo",
            "UploadModule",
            "UploadResult",
            "WorkerDeployment",
            "WorkerInfo",
            "WorkerUpload",
            "WorkerVersion",
        ),
        "provisioning": ("Listener", "QuietListener", "provision_temporary_account"),
        "session": ("AccountSession", "Ran", "account_for"),
        "tail": ("TailConnection", "TailError", "open_websocket"),
    },
)

__all__ = [
    "DEFAULT_API_URL",
    "APIUnreachable",
    "AccountInfo",
    "AccountSession",
    "AssetSource",
    "AssetUpload",
    "AssetUploadError",
    "AssetsUploaded",
    "Challenge",
    "ChallengeUnsupported",
    "ClaimStatus",
    "Credentials",
    "CredentialsError",
    "Deployer",
    "Deployment",
    "KVBinding",
    "KVKey",
    "KVNamespaceInfo",
    "Listener",
    "LoginStore",
    "MayflyAPIError",
    "MayflyClient",
    "ProvisionedNamespace",
    "QuietListener",
    "Ran",
    "Resolution",
    "SDKError",
    "SavedLogin",
    "SecretInfo",
    "TailConnection",
    "TailError",
    "TailInfo",
    "TemporaryAccount",
    "TemporaryAccountCache",
    "UploadModule",
    "UploadResult",
    "WorkerDeployment",
    "WorkerInfo",
    "WorkerUpload",
    "WorkerVersion",
    "account_for",
    "config_dir",
    "namespace_title",
    "normalise_api_url",
    "open_websocket",
    "provision_temporary_account",
    "resolve_credentials",
    "upload_assets",
]
