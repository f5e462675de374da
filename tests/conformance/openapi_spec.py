"""Owncast 0.2.0's OpenAPI spec as the conformance tests read it: issue 6's operations, our routes, schemas.

The spec and the endpoint tables live in the steering repository's `shared/reference/`, next to this
checkout (CI lays a copy there too). Issue 6 scopes its work by the tables of `endpoints.md`, so the
grouping is read from there and every operation it lists is checked against the spec itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REFERENCE_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference"
SPEC_PATH = REFERENCE_DIR / "owncast-openapi.yaml"
ENDPOINTS_PATH = REFERENCE_DIR / "endpoints.md"
SPEC_URI = "urn:owncast:openapi"
API_PREFIX = "/api"  # spec `servers: http://localhost:8080/api`

# The "### ..." headings of endpoints.md that issue 6 covers, by their leading words.
ISSUE_6_GROUPS = ("Status & config", "Admin config setters", "Video / variants / viewers", "Metrics", "Misc")

HEADING = re.compile(r"^### (?P<name>.+?) \((?P<count>\d+) operations\)$")
ROW = re.compile(r"^\| (?P<method>GET|POST|PUT|DELETE|OPTIONS|PATCH|HEAD) \| `(?P<path>/[^`]*)` \|")
PARAM = re.compile(r"\{[^}/]+\}|:[^/]+")


@dataclass(frozen=True, order=True)
class Operation:
    """One operation as the server sees it: method and full path, `{param}` spelled as in the spec."""

    method: str
    path: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def spec_path(self) -> str:
        return self.path.removeprefix(API_PREFIX)

    @property
    def shape(self) -> tuple[str, str]:
        """Method and path with every parameter name erased, to compare spec and router spellings."""
        return self.method, PARAM.sub("{}", self.path)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the conformance tests read shared/reference/ beside the repo")
    return path


# Where Owncast 0.2.0 itself answers outside its spec, we answer as Owncast does (the issue: "exactly
# as Owncast 0.2.0"), and the spec is corrected here, each erratum with its evidence, before any test
# or schemathesis reads it. Keyed by (component schema, property): the property may also be null.
NULLABLE_ERRATA: dict[tuple[str, str], str] = {
    ("Status", "lastConnectTime"): "Go NullTime, null until the first connect (owncast-behavior.md 4.9)",
    ("Status", "lastDisconnectTime"): "null until a stream ends, cleared on connect (owncast-behavior.md 4.9, 1)",
    ("AdminStatus", "broadcaster"): "Go pointer, null while no one streams (owncast-behavior.md 4.1, 4.9)",
    ("AdminStatus", "currentBroadcast"): "Go pointer, set on connect, null while offline (owncast-behavior.md 4.9)",
    ("AdminStatus", "health"): "null with no viewers (owncast-behavior.md 4.1)",
    # Inferred, not in owncast-behavior.md (it leaves the YP protocol out): Owncast's yp response
    # carries the same *utils.NullTime as /api/status.
    ("YPDetails", "lastConnectTime"): "the status's NullTime: null until the first connect",
}

# `/admin/prometheus` declares no responses at all, so every answer would be "undocumented"; Owncast's
# routers serve promhttp's text exposition behind admin auth (endpoints.md, "Quirks").
_PROMETHEUS_RESPONSES = {
    "200": {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}},
    "401": {"$ref": "#/components/responses/401BasicAuth"},
}
RESPONSE_ERRATA: dict[tuple[str, str], dict[str, Any]] = {
    **{("/admin/prometheus", method): _PROMETHEUS_RESPONSES for method in ("get", "post", "put", "delete")},
    ("/admin/prometheus", "options"): {"204": {"$ref": "#/components/responses/204"}},
}


@cache
def spec() -> dict[str, Any]:
    """The spec as Owncast answers it: the YAML with `NULLABLE_ERRATA` and `RESPONSE_ERRATA` applied."""
    loaded: dict[str, Any] = yaml.safe_load(_require(SPEC_PATH).read_text())
    schemas = loaded["components"]["schemas"]
    for (name, prop), _evidence in NULLABLE_ERRATA.items():
        properties = schemas[name]["properties"]
        properties[prop] = {"anyOf": [properties[prop], {"type": "null"}]}
    for (path, method), responses in RESPONSE_ERRATA.items():
        operation = loaded["paths"][path][method]
        assert "responses" not in operation, f"the spec now declares {method.upper()} {path}'s responses"
        operation["responses"] = responses
    return loaded


def spec_operation(op: Operation) -> dict[str, Any]:
    item: dict[str, Any] = spec()["paths"][op.spec_path][op.method.lower()]
    return item


@cache
def issue_operations() -> tuple[Operation, ...]:
    """Every operation of issue 6's groups, in endpoints.md's order; each checked against the spec."""
    operations: list[Operation] = []
    group: str | None = None
    expected = seen = 0

    def close_group() -> None:
        if group is not None and seen != expected:
            raise AssertionError(f"endpoints.md: {group!r} announces {expected} operations, its table has {seen}")

    for line in _require(ENDPOINTS_PATH).read_text().splitlines():
        if line.startswith("#"):
            close_group()
            heading = HEADING.match(line)
            group = heading["name"] if heading and heading["name"].startswith(ISSUE_6_GROUPS) else None
            expected, seen = (int(heading["count"]) if heading else 0), 0
        elif group is not None and (row := ROW.match(line)):
            operations.append(Operation(row["method"], API_PREFIX + row["path"]))
            seen += 1
    close_group()
    paths = spec()["paths"]
    missing = [str(op) for op in operations if op.method.lower() not in paths.get(op.spec_path, {})]
    if missing:
        raise AssertionError(f"endpoints.md lists operations the spec does not have: {missing}")
    if len({op.shape for op in operations}) != len(operations):
        raise AssertionError("endpoints.md lists an operation twice")
    return tuple(operations)


def robyn_routes(app: Any) -> Iterator[Operation]:
    """The HTTP routes of a built (not started) Robyn 0.88 app: `Route(route_type, route, ...)` tuples."""
    for route in app.router.get_routes():
        method = str(route.route_type).rpartition(".")[2]  # "HttpMethod.GET"
        yield Operation(method, PARAM.sub(lambda m: "{" + m[0].lstrip(":") + "}", route.route))


@cache
def app_routes() -> tuple[Operation, ...]:
    """What `create_app` routes today (built in-process, not started)."""
    from owncast_fast.lifecycle import ServicesHolder
    from owncast_fast.web.app import create_app

    return tuple(robyn_routes(create_app(ServicesHolder())))


def requires_admin(op: Operation) -> bool:
    """Admin Basic auth, per endpoints.md: every non-OPTIONS `/admin/` operation of issue 6's groups
    (the spec omits `security` on `/admin/prometheus`, whose handlers wrap admin auth all the same)."""
    return op.method != "OPTIONS" and op.path.startswith(API_PREFIX + "/admin/")


def routed_issue_operations(routes: Iterable[Operation]) -> list[Operation]:
    """Issue 6's operations that `routes` serve, matched on shape (parameter names may differ)."""
    shapes = {route.shape for route in routes}
    return [op for op in issue_operations() if op.shape in shapes]


@cache
def _registry() -> Registry[Any]:
    return Registry().with_resource(SPEC_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def response_spec(op: Operation, status: int) -> tuple[str, dict[str, Any]] | None:
    """The spec's response object for `status` (else `default`) and its JSON pointer, `$ref`s followed."""
    responses = {str(code): value for code, value in spec_operation(op).get("responses", {}).items()}
    code = str(status) if str(status) in responses else "default"
    if code not in responses:
        return None
    pointer = _pointer("paths", op.spec_path, op.method.lower(), "responses", code)
    response = responses[code]
    while "$ref" in response:
        pointer = response["$ref"]
        name = pointer.removeprefix("#/components/responses/")
        response = spec()["components"]["responses"][name]
    return pointer, response


def json_validator(op: Operation, status: int) -> Draft202012Validator | None:
    """A JSON Schema 2020-12 validator (OpenAPI 3.1's dialect) for the JSON body the spec declares for
    `op` answering `status`, or None when it declares none. The schema is reached by pointer into the
    spec document so that its own `#/components/...` references resolve."""
    found = response_spec(op, status)
    if found is None or "application/json" not in found[1].get("content", {}):
        return None
    pointer = found[0] + _pointer("content", "application/json", "schema")[1:]
    return Draft202012Validator({"$ref": SPEC_URI + pointer}, registry=_registry())
