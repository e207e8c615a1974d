"""Admin keys and the instance secret they come from.

The instance secret is 32 random bytes, kept as 64 hex characters in
``<data dir>/credentials/instance_secret`` (mode 0600) unless given on the
command line. The admin key is derived from it, so the same secret always
gives the same key and a new secret (rotation) gives a new one::

    <instance name>|01<64 hex chars>

where the hex is a 32-byte KBKDF (NIST SP 800-108, counter mode, HMAC-SHA256)
of the secret with the label ``"admin key"`` and the instance name as context.
Keys never contain ``:`` because clients append ``:<base64 identity>`` to them
in ``Authorization: Convex`` headers (reference/cli-admin-api.md §4).

:class:`AdminKeyChecker` compares presented keys in constant time.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.kbkdf import (
    KBKDFHMAC,
    CounterLocation,
    Mode,
)

KEY_VERSION = "01"
SECRET_FILE = Path("credentials") / "instance_secret"
_TOKEN = re.compile(r"^[0-9a-f]{2,1024}$")


class AdminKeyError(ValueError):
    """A presented or configured admin key is malformed."""


def generate_instance_secret() -> str:
    return secrets.token_hex(32)


def load_or_create_instance_secret(data_dir: Path) -> str:
    """Read the instance secret kept in the data dir, creating it on first use.

    The file is created with mode 0600 atomically (``O_EXCL``), so two
    processes starting at once cannot end up with different secrets.
    """
    path = data_dir / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = generate_instance_secret()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
        f.flush()
        os.fsync(f.fileno())
    return secret


def _read_secret(path: Path) -> str:
    text = path.read_text().strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise AdminKeyError(f"{path} does not hold a 64-hex-character instance secret")
    return text.lower()


def derive_key_material(instance_secret: str, label: str, context: bytes, length: int) -> bytes:
    """Derive ``length`` bytes for one purpose (admin key, cursors, ...)."""
    kdf = KBKDFHMAC(
        algorithm=hashes.SHA256(),
        mode=Mode.CounterMode,
        length=length,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=label.encode(),
        context=context,
        fixed=None,
    )
    return kdf.derive(bytes.fromhex(instance_secret))


def derive_admin_key(instance_name: str, instance_secret: str) -> str:
    material = derive_key_material(instance_secret, "admin key", instance_name.encode(), 32)
    return f"{instance_name}|{KEY_VERSION}{material.hex()}"


def parse_admin_key(key: str) -> tuple[str, str]:
    """Split a key into (instance name, token), checking its shape only."""
    if not isinstance(key, str) or not key:
        raise AdminKeyError("the admin key is empty")
    if ":" in key:
        raise AdminKeyError("an admin key never contains ':'")
    name, sep, token = key.partition("|")
    if not sep or not name or not token:
        raise AdminKeyError("an admin key looks like '<instance name>|<hex>'")
    if not _TOKEN.match(token):
        raise AdminKeyError("the part after '|' must be lowercase hexadecimal")
    return name, token


class AdminKeyChecker:
    """Knows the one valid admin key and checks presented keys in constant time."""

    def __init__(self, admin_key: str) -> None:
        parse_admin_key(admin_key)
        self._key = admin_key.encode()

    def is_valid(self, presented: str | None) -> bool:
        if not presented:
            return False
        try:
            candidate = presented.encode()
        except UnicodeEncodeError:
            return False
        # compare_digest takes time independent of where the strings differ.
        return hmac.compare_digest(candidate, self._key)

    def __repr__(self) -> str:
        return "AdminKeyChecker(<redacted>)"
