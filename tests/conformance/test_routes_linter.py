"""Linter as a test: every operation of issue 6's groups is routed, or waived here with a written reason.

The operations come from `endpoints.md`'s tables ("Status & config", "Admin config setters", "Video /
variants / viewers", "Metrics", "Misc"), checked against Owncast's spec; the routes come from the Robyn app
as `create_app` builds it, without starting it. A waiver is a debt with a reason: when its operation gets
routed, the waiver must go (the test says so), so the list only shrinks and never lies.
"""

from __future__ import annotations

import pytest
from openapi_spec import Operation, issue_operations, robyn_routes, routed_issue_operations

from owncast_fast.lifecycle import ServicesHolder
from owncast_fast.web.app import create_app

INTEGRATIONS = "external API tokens land with the integrations issue"

WAIVERS: dict[str, str] = {
    "POST /api/integrations/streamtitle": INTEGRATIONS,
    "OPTIONS /api/integrations/streamtitle": INTEGRATIONS,
}


@pytest.fixture(scope="module")
def routes() -> list[Operation]:
    return list(robyn_routes(create_app(ServicesHolder())))


def test_every_operation_of_issue_6_is_routed_or_waived(routes: list[Operation]) -> None:
    routed = set(routed_issue_operations(routes))
    unrouted = [str(op) for op in issue_operations() if op not in routed and str(op) not in WAIVERS]
    assert not unrouted, f"not routed and not waived (route them, or waive with a reason): {unrouted}"


def test_no_waiver_outlives_its_reason(routes: list[Operation]) -> None:
    routed = {str(op) for op in routed_issue_operations(routes)}
    stale = sorted(waived for waived in WAIVERS if waived in routed)
    assert not stale, f"routed now, remove their waivers: {stale}"


def test_waivers_name_operations_of_issue_6() -> None:
    known = {str(op) for op in issue_operations()}
    strangers = sorted(waived for waived in WAIVERS if waived not in known)
    assert not strangers, f"waivers for operations outside issue 6's groups (typo?): {strangers}"


def test_every_waiver_gives_a_reason() -> None:
    assert all(reason.strip() for reason in WAIVERS.values())


def test_the_groups_are_read_whole() -> None:
    """endpoints.md's tables for issue 6 hold 8 + 68 + 14 + 12 + 12 operations."""
    operations = issue_operations()
    assert len(operations) == 114
    assert Operation("GET", "/api/status") in operations
    assert Operation("OPTIONS", "/api/admin/prometheus") in operations
    assert Operation("GET", "/api/admin/yp/reset") in operations
    assert Operation("POST", "/api/admin/config/federation/enable") not in operations  # federation's issue
