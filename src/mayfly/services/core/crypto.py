"""Keys, hashing, signing and encryption of secrets at rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


def load_or_create_key(secret_key: str, data_dir: Path) -> bytes:
    """The platform key: MAYFLY_SECRET_KEY if set, else a random key kept in the data dir (0600)."""
    if secret_key:
        return hashlib.sha256(secret_key.encode()).digest()
    path = data_dir / "secret.key"
    if path.exists():
        return base64.b64decode(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(base64.b64encode(key).decode())
    tmp.replace(path)
    return key


def hash_token(token: str) -> str:
    """Tokens carry >= 256 bits of randomness, so a plain SHA-256 is a sufficient one-way hash."""
    return hashlib.sha256(token.encode()).hexdigest()


class Crypto:
    def __init__(self, key: bytes):
        self._sign_key = hmac.new(key, b"mayfly-sign", hashlib.sha256).digest()
        self.jwt_key = hmac.new(key, b"mayfly-jwt", hashlib.sha256).digest()
        fernet_key = hmac.new(key, b"mayfly-encrypt", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(fernet_key))

    def sign(self, payload: bytes) -> str:
        return (
            base64.urlsafe_b64encode(hmac.new(self._sign_key, payload, hashlib.sha256).digest())
            .decode()
            .rstrip("=")
        )

    def verify(self, payload: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(payload), signature)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this platform key") from exc
