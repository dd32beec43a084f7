"""A typed client for the Mayfly API (on which the CLI and the MCP server are built).

Imports nothing server-side (an import-linter contract checks it).
"""

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
from mayfly.sdk.deploy import Deployer
from mayfly.sdk.errors import (
    APIUnreachable,
    ChallengeUnsupported,
    CredentialsError,
    MayflyAPIError,
    SDKError,
)
from mayfly.sdk.models import (
    AccountInfo,
    Challenge,
    ClaimStatus,
    Deployment,
    TemporaryAccount,
    UploadModule,
    UploadResult,
    WorkerInfo,
    WorkerUpload,
)
from mayfly.sdk.provisioning import Listener, QuietListener, provision_temporary_account

__all__ = [
    "DEFAULT_API_URL",
    "APIUnreachable",
    "AccountInfo",
    "Challenge",
    "ChallengeUnsupported",
    "ClaimStatus",
    "Credentials",
    "CredentialsError",
    "Deployer",
    "Deployment",
    "Listener",
    "LoginStore",
    "MayflyAPIError",
    "MayflyClient",
    "QuietListener",
    "Resolution",
    "SDKError",
    "SavedLogin",
    "TemporaryAccount",
    "TemporaryAccountCache",
    "UploadModule",
    "UploadResult",
    "WorkerInfo",
    "WorkerUpload",
    "config_dir",
    "normalise_api_url",
    "provision_temporary_account",
    "resolve_credentials",
]
