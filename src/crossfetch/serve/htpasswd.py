"""Client authentication: an htpasswd file of bcrypt hashes (``htpasswd -B``), as
distribution's ``auth.htpasswd`` takes it."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import bcrypt

from ..errors import ConfigError

MAX_CACHE = 4096


class Htpasswd:
    """Checks ``Authorization: Basic`` against bcrypt hashes; remembers successes (by a hash
    of the credentials) so bcrypt's deliberate cost is paid once per client, not per request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.users: dict[str, bytes] = {}
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read --htpasswd {path}: {e}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ConfigError(f"{path}:{n}: only bcrypt entries (user:$2y$...) are accepted",
                                  fix="make the file with htpasswd -B (bcrypt)")
            self.users[user] = hashed.encode()
        if not self.users:
            raise ConfigError(f"--htpasswd {path} has no users",
                              fix="add one with htpasswd -B FILE USER")
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, authorization: str | None) -> str | None:
        """The user name if ``authorization`` holds valid Basic credentials (blocking: bcrypt)."""
        if not authorization or authorization[:6].lower() != "basic ":
            return None
        try:
            user, sep, password = base64.b64decode(authorization[6:].strip(),
                                                   validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        hashed = self.users.get(user)
        if not sep or hashed is None:
            return None
        memo = hashlib.sha256(hashed + b"\0" + password.encode()).digest()
        with self._lock:
            if memo in self._ok:
                return user
        if not bcrypt.checkpw(password.encode(), hashed.replace(b"$2y$", b"$2b$", 1)):
            return None
        with self._lock:
            if len(self._ok) >= MAX_CACHE:
                self._ok.clear()
            self._ok.add(memo)
        return user
