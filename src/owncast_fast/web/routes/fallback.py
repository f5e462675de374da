"""Unknown `/api/...` paths: 404 with Owncast's error helper shape `{"error": "..."}`.

Robyn 0.88 answers an unrouted path with a text "Not found"; API clients expect JSON. Its router
(matchit 0.7) supports a catch-all segment, and a static or parametrised route always wins over it,
so one catch-all per method under `/api` costs the routed endpoints nothing. A global `after_request`
rewriting 404s would have worked too, but it is a Python call on every request: on loopback with
wrk it took `/api/status` from about 11,500 to about 7,500 requests/s, where the catch-all measured
the same as no fallback at all.

Limit of matchit 0.7, checked with Robyn 0.88: a catch-all cannot sit beside a `:param` segment at
the same level, so `/api/:anything` must never be routed (Owncast's API has no such path).
"""

from __future__ import annotations

from robyn import Request, Response, SubRouter

from owncast_fast.lifecycle import ServicesHolder
from owncast_fast.web.responses import error_response

# Robyn 0.88 answers HEAD only where a HEAD route exists (no implicit GET), so HEAD is covered too.
METHODS = ("get", "post", "put", "delete", "patch", "options", "head")


def not_found(request: Request) -> Response:
    return error_response(f"no such API endpoint: {request.method} {request.url.path}", 404)


def router(holder: ServicesHolder) -> SubRouter:
    """Register last: it only catches what no other router serves under `/api`."""
    api = SubRouter(prefix="/api")
    for method in METHODS:
        register = getattr(api, method)
        register("")(not_found)  # `/api` and `/api/` themselves
        register("/*rest")(not_found)
    return api
