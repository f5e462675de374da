"""Every routed operation of issue 6 answers with a status the spec declares and a body its schema accepts.

One real server for the module. Valid calls first (GETs, then each setter with a value Owncast accepts),
then the error shapes: 401 for missing or wrong admin credentials, and 400/413 BaseAPIResponse for bodies
that are malformed, of the wrong type or too large, none of which may change the saved configuration.
Operations that are not routed yet are skipped here; the routes linter keeps the list of those honest.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import struct
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from openapi_spec import (
    API_PREFIX,
    Operation,
    app_routes,
    json_validator,
    requires_admin,
    response_spec,
    routed_issue_operations,
    spec_operation,
)
from tests.conftest import ADMIN_PASSWORD, ServerProcess

pytestmark = pytest.mark.integration

REALM = 'Basic realm="Owncast Authenticated Request"'
ROUTED = routed_issue_operations(app_routes())
CALLED = [op for op in ROUTED if op.method != "OPTIONS"]
PREFLIGHTS = [op for op in ROUTED if op.method == "OPTIONS" and op.path != API_PREFIX + "/admin/prometheus"]
SERVER_CONFIG = Operation("GET", API_PREFIX + "/admin/serverconfig")
# No one sends a setter 16 MiB; whatever cap a handler picked, this is over it.
OVERSIZED = b'{"value": "' + b"A" * (16 << 20) + b'"}'


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


# A value Owncast 0.2.0 accepts for each POST of issue 6's groups (AdminConfigValue is `{"value": ...}`).
# Values that act at the next start (ports, IP) or on the stream (codec, variants) are harmless here.
VALID_BODIES: dict[str, Any] = {
    "/admin/config/adminpass": {"value": ADMIN_PASSWORD},  # the same password: later calls still authenticate
    "/admin/config/streamkeys": {"value": [{"key": "abc123", "comment": "conformance"}]},
    "/admin/config/pagecontent": {"value": "# Welcome\n\nThe stream starts soon."},
    "/admin/config/streamtitle": {"value": "Conformance run"},
    "/admin/config/name": {"value": "owncast-fast"},
    "/admin/config/serversummary": {"value": "A conformance test server."},
    "/admin/config/offlinemessage": {"value": "Back soon."},
    "/admin/config/welcomemessage": {"value": "Welcome to chat."},
    "/admin/config/chat/disable": {"value": False},
    "/admin/config/chat/joinmessagesenabled": {"value": True},
    "/admin/config/chat/establishedusermode": {"value": False},
    "/admin/config/chat/forbiddenusernames": {"value": ["admin", "owncast"]},
    "/admin/config/chat/suggestedusernames": {"value": ["quiet-otter", "brave-heron"]},
    "/admin/config/chat/spamprotectionenabled": {"value": True},
    "/admin/config/chat/slurfilterenabled": {"value": False},
    "/admin/config/appearance": {"value": {"theme-color-palette-0": "#1a1a2e"}},
    "/admin/config/logo": {"value": "data:image/png;base64," + base64.b64encode(tiny_png()).decode()},
    "/admin/config/tags": {"value": ["music", "live"]},
    "/admin/config/ffmpegpath": {"value": shutil.which("ffmpeg") or "/usr/bin/ffmpeg"},
    "/admin/config/webserverport": {"value": 8080},
    "/admin/config/webserverip": {"value": "0.0.0.0"},
    "/admin/config/rtmpserverport": {"value": 1935},
    "/admin/config/sockethostoverride": {"value": "https://chat.example.com"},
    "/admin/config/nsfw": {"value": False},
    "/admin/config/directoryenabled": {"value": False},
    "/admin/config/socialhandles": {"value": [{"platform": "mastodon", "url": "https://mastodon.social/@owncast"}]},
    "/admin/config/s3": {
        "value": {
            "enabled": False,
            "endpoint": "https://s3.example.com",
            "accessKey": "access",
            "secret": "secret",
            "bucket": "bucket",
            "region": "us-east-1",
            "acl": "",
            "pathPrefix": "",
            "forcePathStyle": False,
        }
    },
    "/admin/config/serverurl": {"value": "https://live.example.com"},
    "/admin/config/externalactions": {
        "value": [{"url": "https://owncast.online", "title": "Owncast", "description": "", "openExternally": True}]
    },
    "/admin/config/customstyles": {"value": "body { color: #222; }"},
    "/admin/config/customjavascript": {"value": "console.log('hello');"},
    "/admin/config/hideviewercount": {"value": False},
    "/admin/config/disablesearchindexing": {"value": False},
    "/admin/config/video/codec": {"value": "libx264"},
    "/admin/config/video/streamlatencylevel": {"value": 2},
    "/admin/config/video/streamoutputvariants": {
        "value": [
            {
                "name": "720p",
                "videoPassthrough": False,
                "audioPassthrough": True,
                "videoBitrate": 1200,
                "audioBitrate": 128,
                "scaledWidth": 1280,
                "scaledHeight": 720,
                "framerate": 30,
                "cpuUsageLevel": 2,
            }
        ]
    },
    "/admin/config/videoservingendpoint": {"value": ""},
    "/metrics/playback": {
        "bandwidth": 2500.0,
        "latency": 3.5,
        "errors": 0,
        "downloadDuration": 0.4,
        "qualityVariantChanges": 0,
    },
}
# A value of the wrong JSON type for each setter: an object where AdminConfigValue allows none.
WRONG_TYPE_OVERRIDES: dict[str, Any] = {
    "/admin/config/s3": {"value": ["s3"]},
    "/metrics/playback": {"latency": "slow"},
}
WRONG_TYPE_DEFAULT = {"value": {"unexpected": [1]}}

SETTERS = [op for op in CALLED if op.method == "POST" and op.spec_path in VALID_BODIES]


def call(server: ServerProcess, op: Operation, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else None
    admin = ADMIN_PASSWORD if requires_admin(op) else None
    return server.request(op.path, method=op.method, body=body, admin=admin, headers=headers)


def check_against_spec(op: Operation, status: int, headers: dict[str, str], body: bytes) -> None:
    assert status < 500, f"{op} -> {status}: {body[:500]!r}"
    declared = response_spec(op, status)
    if declared is None:
        codes = sorted(map(str, spec_operation(op).get("responses", {})))
        assert not codes, f"{op} -> {status}, the spec declares only {codes}: {body[:500]!r}"
        return
    validator = json_validator(op, status)
    if validator is None:
        return
    assert headers.get("content-type", "").startswith("application/json"), f"{op} -> {status} {headers}"
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in validator.iter_errors(json.loads(body))
    ]
    assert not errors, f"{op} -> {status}: the body breaks the spec's schema: {errors}"


@pytest.mark.parametrize("op", [op for op in CALLED if op not in SETTERS], ids=str)
def test_call_answers_as_the_spec_says(module_server: ServerProcess, op: Operation) -> None:
    body = b"" if op.method in ("POST", "PUT") else None
    check_against_spec(op, *call(module_server, op, body))


@pytest.mark.parametrize("op", SETTERS, ids=str)
def test_valid_value_is_saved(module_server: ServerProcess, op: Operation) -> None:
    status, headers, body = call(module_server, op, json.dumps(VALID_BODIES[op.spec_path]).encode())
    check_against_spec(op, status, headers, body)
    assert status == 200, f"{op} refused a valid value: {body[:500]!r}"
    if json_validator(op, 200) is not None:
        assert json.loads(body)["success"] is True


def test_every_routed_post_has_a_valid_body_here() -> None:
    posts = [str(op) for op in CALLED if op.method == "POST" and op.spec_path not in VALID_BODIES]
    assert posts in ([], ["POST /api/admin/prometheus"]), f"add a valid body to VALID_BODIES for {posts}"


@pytest.mark.parametrize("op", PREFLIGHTS, ids=str)
def test_preflight_is_204_without_credentials(module_server: ServerProcess, op: Operation) -> None:
    status, headers, body = module_server.request(op.path, method="OPTIONS")
    assert (status, body) == (204, b"")
    assert headers.get("access-control-allow-origin") == "*"


@pytest.mark.parametrize("op", [op for op in CALLED if requires_admin(op)], ids=str)
@pytest.mark.parametrize("password", [None, "wrong-password"])
def test_admin_operation_refuses_without_the_password(
    module_server: ServerProcess, op: Operation, password: str | None
) -> None:
    body = json.dumps(VALID_BODIES.get(op.spec_path, {})).encode() if op.method == "POST" else None
    status, headers, text = module_server.request(op.path, method=op.method, admin=password, body=body)
    assert (status, text) == (401, b"Unauthorized"), f"{op}: {status} {text[:200]!r}"
    assert headers.get("www-authenticate") == REALM
    assert headers.get("content-type", "").startswith("text/plain")


def saved_config(server: ServerProcess) -> bytes | None:
    if SERVER_CONFIG not in ROUTED:
        return None
    status, _, body = call(server, SERVER_CONFIG)
    assert status == 200
    return body


BAD_BODIES = {
    "malformed JSON": lambda path: b'{"value": ',
    "a JSON array": lambda path: b"[]",
    "the wrong type": lambda path: json.dumps(WRONG_TYPE_OVERRIDES.get(path, WRONG_TYPE_DEFAULT)).encode(),
    "too large": lambda path: OVERSIZED,
}


@pytest.mark.parametrize("op", SETTERS, ids=str)
@pytest.mark.parametrize("problem", list(BAD_BODIES))
def test_bad_body_is_refused_and_nothing_is_saved(module_server: ServerProcess, op: Operation, problem: str) -> None:
    before = saved_config(module_server)
    status, headers, body = call(module_server, op, BAD_BODIES[problem](op.spec_path))
    check_against_spec(op, status, headers, body)
    expected = (400, 413) if problem == "too large" else (400,)
    assert status in expected, f"{op} with {problem}: {status} {body[:300]!r}"
    answer = json.loads(body)
    assert answer["success"] is False
    assert answer["message"], f"{op} with {problem}: no message"
    assert saved_config(module_server) == before, f"{op} with {problem} changed the saved configuration"


def test_directory_details_match_the_spec_when_listed(module_server: ServerProcess) -> None:
    """`/api/yp` answers 404 while the directory is off (the default), so switch it on to see the body."""
    yp = Operation("GET", API_PREFIX + "/yp")
    switch = Operation("POST", API_PREFIX + "/admin/config/directoryenabled")
    if not {yp, switch} <= set(ROUTED):
        pytest.skip("GET /api/yp or its switch is not routed yet")
    assert call(module_server, switch, b'{"value": true}')[0] == 200
    try:
        status, headers, body = call(module_server, yp)
        assert status == 200
        check_against_spec(yp, status, headers, body)
    finally:
        assert call(module_server, switch, b'{"value": false}')[0] == 200
    assert call(module_server, yp)[0] == 404


def test_metric_series_serialize_any_finite_value() -> None:
    series = pytest.importorskip("owncast_fast.metrics.series", reason="the metrics routes are not in yet")
    for value in (1e300, -1e300, float(2**63), 2.0**64, 1.5, 3.0):
        point = series.TimestampedValue(datetime.now(UTC), value)
        (answer,) = orjson.loads(orjson.dumps(series.series_json([point])))
        assert math.isclose(answer["value"], value)
