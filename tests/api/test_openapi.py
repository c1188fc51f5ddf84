"""The OpenAPI document, the reference page, and Schemathesis fuzzing every operation."""

import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from webapp.domain import api_keys, ledger

# Examples per operation and generation mode: bounded so `make test` stays quick.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))


def test_the_document_describes_every_api_v1_operation(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {
        (re.sub(r"\{(\w+)\}", r"<\1>", path), method.upper())
        for path, operations in spec["paths"].items()
        for method in operations
        if method != "parameters"
    }
    routed = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routed and documented == routed
    capture = spec["paths"]["/api/v1/holds/{hold_id}/capture"]["post"]
    assert {"200", "400", "401", "402", "404", "409"} <= set(capture["responses"])
    schemas = spec["components"]["schemas"]
    assert schemas["HoldBody"]["properties"]["expires_in"]["maximum"] == 86400
    assert schemas["UsageBody"]["properties"]["credits"]["maximum"] == 10**12


def test_the_reference_page_and_its_assets_are_served_by_the_app(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/") for source in sources)
    for source in sources:
        assert client.get(source).status_code == 200, source
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "http" not in csp
    assert client.get("/api/docs/assets/index.html").status_code == 404


def _error_shape(ctx, response, case):
    """Every 4xx is the contract's JSON: {"error": "<code>", ...}."""
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str), body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    _error_shape,
]


@pytest.fixture
def fuzzed(app, user):
    """The app with a funded account, a key for it, and a hold to act on."""
    ledger.adjust(user.id, 10**6, "seed")
    secret = api_keys.mint(user.id, "schemathesis").secret
    hold_id = ledger.place_hold(user.id, 500, expires_in=86400)["id"]
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app), secret, hold_id


def _strategies(operation, hold_id):
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    for mode in modes:
        yield operation.as_strategy(generation_mode=mode)
        if "{hold_id}" in operation.path:
            yield operation.as_strategy(generation_mode=mode, path_parameters={"hold_id": hold_id})


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(fuzzed):
    schema, secret, hold_id = fuzzed
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        for strategy in _strategies(operation, hold_id):

            @given(case=strategy)
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case):
                headers = {"Authorization": f"Bearer {secret}"}
                response = case.call(headers=headers)
                case.validate_response(response, checks=CHECKS, headers=headers)

            run()


def test_without_a_key_every_operation_is_401_json(fuzzed, client):
    schema = fuzzed[0]
    for result in schema.get_all_operations():
        operation = result.ok()
        path = operation.path.replace("{hold_id}", "hold_x")
        response = client.open(path, method=operation.method.upper(), json={})
        assert response.status_code == 401 and response.get_json()["error"], path
