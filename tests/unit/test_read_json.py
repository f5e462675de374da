"""`read_json`: the body cap and the parse errors every POST handler answers with, as Owncast's BaseAPIResponse."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest
from robyn import Request, Response

from owncast_fast.web.responses import BODY_LIMIT, read_json


def request_with(body: str | bytes) -> Request:
    return cast(Request, SimpleNamespace(body=body))


def error_of(result: dict[str, Any] | Response) -> tuple[int, dict[str, Any]]:
    assert isinstance(result, Response)
    assert result.headers.get("Content-Type") == "application/json"
    return result.status_code, orjson.loads(result.description)


@pytest.mark.parametrize("body", ['{"value": "é"}', '{"value": "é"}'.encode()])
def test_an_object_is_returned_parsed(body: str | bytes) -> None:
    assert read_json(request_with(body)) == {"value": "é"}


def test_a_body_at_the_limit_is_read() -> None:
    body = '{"value": "' + "x" * (BODY_LIMIT - 13) + '"}'
    assert len(body) == BODY_LIMIT
    assert read_json(request_with(body)) == {"value": "x" * (BODY_LIMIT - 13)}


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": "' + b"x" * BODY_LIMIT + b'"}',
        '{"value": "' + "x" * BODY_LIMIT + '"}',
        # Under the limit in characters, over it in UTF-8 bytes: the cap counts bytes.
        '{"value": "' + "é" * (BODY_LIMIT // 2) + '"}',
    ],
)
def test_a_body_over_the_limit_is_400(body: str | bytes) -> None:
    assert error_of(read_json(request_with(body))) == (
        400,
        {"message": f"request body is larger than the limit of {BODY_LIMIT} bytes", "success": False},
    )


def test_a_handler_sets_its_own_limit() -> None:
    assert error_of(read_json(request_with('{"value": "abcdef"}'), limit=10)) == (
        400,
        {"message": "request body is larger than the limit of 10 bytes", "success": False},
    )
    assert read_json(request_with('{"value": "abcdef"}'), limit=19) == {"value": "abcdef"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "request body is empty: expected a JSON object"),
        (b"", "request body is empty: expected a JSON object"),
        ("[1, 2]", "request body must be a JSON object, not an array"),
        ('"x"', "request body must be a JSON object, not a string"),
        ("3", "request body must be a JSON object, not a number"),
        ("3.5", "request body must be a JSON object, not a number"),
        ("true", "request body must be a JSON object, not a boolean"),
        ("null", "request body must be a JSON object, not null"),
    ],
)
def test_what_is_not_a_json_object_is_400(body: str | bytes, message: str) -> None:
    assert error_of(read_json(request_with(body))) == (400, {"message": message, "success": False})


@pytest.mark.parametrize("body", ['{"value": ', "value=x", b'{"value": "\xff"}', '{"value": 1,}'])
def test_malformed_json_is_400_with_the_parser_message(body: str | bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError) as parse_error:
        orjson.loads(body)
    message = f"request body is not valid JSON: {parse_error.value}"
    assert error_of(read_json(request_with(body))) == (400, {"message": message, "success": False})
