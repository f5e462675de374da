"""Response helpers with Owncast's shapes: JSON via orjson, `{message, success}`, `{error}`."""

from __future__ import annotations

from typing import Any

import orjson
from robyn import Request, Response

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


# Request bodies. Robyn 0.88 buffers every non-multipart body whole before the handler runs, and
# ROBYN_MAX_PAYLOAD_SIZE does not apply to them (sparckles/Robyn#1425), so a cap can only bound
# what a handler parses and keeps; a reverse proxy's body limit bounds what reaches memory.
# 64 KiB holds any Owncast setter value with room to spare; handlers of big values (logo images,
# custom CSS/JavaScript) pass their own limit. Too large is a 400 like every other refused body, not
# 413: some operations declare no other error status (POST /api/metrics/playback: 200 and 400 only).
BODY_LIMIT = 64 * 1024
_JSON_TYPE_NAMES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def read_json(request: Request, limit: int = BODY_LIMIT) -> dict[str, Any] | Response:
    """The request body as a JSON object, or the Response to send instead.

    Errors are Owncast's BaseAPIResponse with `success: false` and status 400: a body over `limit`
    bytes, an empty body, malformed JSON or a JSON value that is not an object. Callers:
    `body = read_json(request); if isinstance(body, Response): return body`.
    """
    raw = request.body  # Robyn 0.88: str when the body is valid UTF-8, bytes otherwise
    # A character is at least one byte, so only a str shorter than the limit needs encoding to count.
    if len(raw) > limit or (isinstance(raw, str) and len(raw) * 4 > limit and len(raw.encode()) > limit):
        return api_response(f"request body is larger than the limit of {limit} bytes", False)
    if not raw:
        return api_response("request body is empty: expected a JSON object", False)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return api_response(f"request body is not valid JSON: {exc}", False)
    if not isinstance(value, dict):
        kind = "null" if value is None else _JSON_TYPE_NAMES[type(value)]
        return api_response(f"request body must be a JSON object, not {kind}", False)
    return value


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
