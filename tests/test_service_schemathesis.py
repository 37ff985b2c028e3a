"""Property-based API test: schemathesis generates requests (valid and invalid) for every operation of the OpenAPI
schema; no response may be a 5xx, every status code must be documented and every body must match the schema.
Bounded: SCHEMATHESIS_EXAMPLES examples per operation (default 15) so that it fits in CI."""
import os

import pytest
from hypothesis import HealthCheck, given, settings

from service_helpers import make_app

schemathesis = pytest.importorskip("schemathesis")
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "15"))


def test_no_server_errors_and_responses_match_the_schema(tmp_path):
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    # max_queue is high so that generated jobs are not refused for a busy worker (429 is tested elsewhere)
    app = make_app(tmp_path, max_queue=10_000, max_upload_bytes=2_000_000)
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    failures, statuses = [], {}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        def run(case):
            response = case.call_and_validate(checks=checks, headers={"Host": "testserver"})
            statuses.setdefault(operation.label, set()).add(response.status_code)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {exc}")
    app.state.service.jobs.stop()
    assert not failures, "\n\n".join(failures)
    assert all(code < 500 for codes in statuses.values() for code in codes)
    assert 422 in statuses["POST /v1/jobs/predict"]  # invalid input was generated and refused
