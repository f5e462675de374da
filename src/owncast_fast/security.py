"""Admin credentials: the password stored as a bcrypt hash, as Owncast 0.2 does.

bcrypt is deliberately slow (~50 ms at cost 10), too slow to pay on every admin request. After a
password verifies once, we keep an HMAC of it under a per-process random key; later requests
compare HMACs in constant time. Changing the password clears the cache, so the old password
stops working at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading

import bcrypt

BCRYPT_COST = 10  # Owncast 0.2's cost
BCRYPT_MAX_BYTES = 72


def _prehash(password: str) -> bytes:
    """bcrypt reads at most 72 bytes; like Owncast 0.2, longer passwords are SHA-512'd first."""
    raw = password.encode()
    if len(raw) > BCRYPT_MAX_BYTES:
        raw = base64.b64encode(hashlib.sha512(raw).digest())
    return raw


def hash_password(password: str) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(BCRYPT_COST)).decode()


def check_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), hashed.encode())
    except ValueError:  # not a bcrypt hash
        return False


class AdminCredentials:
    def __init__(self, password_hash: str) -> None:
        self._hash = password_hash
        self._key = os.urandom(32)
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()  # handlers run on several Robyn worker threads

    def _mac(self, password: str) -> bytes:
        return hmac.digest(self._key, password.encode(), "sha256")

    def set_hash(self, password_hash: str) -> None:
        with self._lock:
            self._hash = password_hash
            self._verified = set()

    def is_cached(self, password: str) -> bool:
        """True if this password verified before (fast, constant-time over the cache)."""
        mac = self._mac(password)
        with self._lock:
            known = tuple(self._verified)
        # Compare against every entry: the time taken does not depend on which one matched.
        return sum(hmac.compare_digest(mac, entry) for entry in known) > 0

    def verify(self, password: str) -> bool:
        """Full check (bcrypt when not cached): call it off the event loop."""
        if self.is_cached(password):
            return True
        with self._lock:
            current = self._hash
        if not check_password(password, current):
            return False
        with self._lock:
            if self._hash == current:
                self._verified.add(self._mac(password))
        return True
