"""HTTP Basic auth for the admin API (user `admin`), as Owncast answers it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from robyn import Request, Response

from owncast_fast.security import AdminCredentials

ADMIN_USER = "admin"
REALM = 'Basic realm="Owncast Authenticated Request"'


def basic_password(authorization: str | None) -> str | None:
    """The password of `Authorization: Basic` for user admin; None if absent or another user."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not hmac.compare_digest(user.encode(), ADMIN_USER.encode()):
        return None
    return password


def unauthorized() -> Response:
    return Response(
        401,
        {
            "WWW-Authenticate": REALM,
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
        b"Unauthorized",
    )


Handler = Callable[[Request], Awaitable[Any]]


def admin_only(credentials: Callable[[], AdminCredentials]) -> Callable[[Handler], Handler]:
    """Wrap an async handler: 401 unless the request carries the admin's Basic credentials."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: Request) -> Any:
            admin = credentials()
            password = basic_password(request.headers.get("authorization"))
            if password is None:
                return unauthorized()
            # A cache miss runs bcrypt (~50 ms): in a worker thread, never on the event loop.
            if not admin.is_cached(password) and not await asyncio.to_thread(admin.verify, password):
                return unauthorized()
            return await handler(request)

        return guarded

    return decorate
