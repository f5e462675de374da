"""Response helpers with Owncast's shapes: JSON via orjson, `{message, success}`, `{error}`."""

from __future__ import annotations

from typing import Any

import orjson
from robyn import Response

JSON = "application/json"
CORS_ANY = {"Access-Control-Allow-Origin": "*"}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    all_headers = {"Content-Type": JSON}
    if headers:
        all_headers.update(headers)
    return Response(status, all_headers, orjson.dumps(data))


def api_response(message: str, success: bool) -> Response:
    """Owncast's BaseAPIResponse: 200 on success, 400 on failure."""
    return json_response({"message": message, "success": success}, 200 if success else 400)


def error_response(message: str, status: int) -> Response:
    """Owncast's error helper shape: {"error": "..."}."""
    return json_response({"error": message}, status)


def preflight() -> Response:
    """CORS preflight answer (204), given before any auth check, as Owncast's middleware does."""
    return Response(
        204,
        {
            **CORS_ANY,
            "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
        },
        b"",
    )
