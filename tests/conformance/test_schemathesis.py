"""Schemathesis against a running server: no 5xx, every status and body as Owncast's spec declares them.

Issue 6's "Bad input" bar, in the test command. Each routed operation of issue 6's groups (the routes
linter's enumeration) is one test per generation mode: positive cases are values the spec allows,
negative ones break the spec (wrong types, missing or extra parts) and must be refused cleanly. Admin
Basic credentials are supplied, so a 401 on a positive case means the guard refused a right password.
Hypothesis runs derandomized with a small example budget: the same cases on every run, well under a
minute on two cores. Known failures are strict xfails: fixing one fails the run until it leaves
`KNOWN_FAILURES`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec import API_PREFIX, Operation, app_routes, requires_admin, routed_issue_operations, spec
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from tests.conftest import ADMIN_PASSWORD, ServerProcess

pytestmark = pytest.mark.integration

# Cases per operation and mode. 15 positive + 15 negative over ~110 operations is about 30 s here.
MAX_EXAMPLES = 15
# status_code_conformance stays on: over the routed operations it reported nothing but the
# undeclared responses of /admin/prometheus, which openapi_spec.RESPONSE_ERRATA now declares.
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
AUTHORIZATION = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}

EXCLUDED: dict[str, str] = {
    "POST /api/admin/config/adminpass": "a generated password would lock the later cases out; "
    "test_response_schemas covers its answers",
}
# (mode, operation) -> why it fails today; strict: a fix makes the run fail until the entry goes.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}

SCHEMA = schemathesis.openapi.from_dict(spec())


def has_input(op: Operation) -> bool:
    """Whether negative cases exist: something to break besides the path (a body or a parameter)."""
    item = spec()["paths"][op.spec_path]
    operation = item[op.method.lower()]
    return "requestBody" in operation or bool(operation.get("parameters") or item.get("parameters"))


def cases() -> list[Any]:
    params = []
    for op in routed_issue_operations(app_routes()):
        if str(op) in EXCLUDED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not has_input(op):
                continue
            reason = KNOWN_FAILURES.get((mode.value, str(op)))
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            params.append(pytest.param(op, mode, id=f"{mode.value}-{op}", marks=marks))
    return params


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


@pytest.mark.parametrize(("op", "mode"), cases())
def test_operation(
    module_server: ServerProcess, session: requests.Session, op: Operation, mode: GenerationMode
) -> None:
    operation = SCHEMA[op.spec_path][op.method]
    base_url = module_server.base_url + API_PREFIX

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=base_url, session=session, headers=AUTHORIZATION, checks=CHECKS)
        if mode is GenerationMode.POSITIVE and requires_admin(op):
            assert response.status_code != 401, f"{op}: the admin password was refused"

    run()
