"""schemathesis against the running hub, every v1 operation: no 5xx, documented statuses and bodies."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import KEY
from tests.processes import Service

pytestmark = pytest.mark.integration

# The committed document (the drift test proves it equals what the app serves).
schema = schemathesis.openapi.from_path(Path(__file__).parents[2] / "openapi" / "v1.json")
# A raw X12 835 is text: generated strings go out as they are, so the hub's X12 intake meets them too.
schemathesis.serializer.alias("application/edi-x12", "text/plain")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: schemathesis.Case, hub: Service) -> None:
    response = case.call(base_url=hub.url, headers={"X-API-Key": KEY}, timeout=15)
    case.validate_response(
        response,
        checks=(
            schemathesis.checks.not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ),
    )
