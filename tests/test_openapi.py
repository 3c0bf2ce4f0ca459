"""The OpenAPI document tells the truth: every error a route really answers is documented for that
route, in the shape the app sends; OPTIONS and 405 name the methods an address takes."""

from __future__ import annotations

import re

import pytest
from conftest import API, make_settings
from jsonschema import Draft202012Validator
from litestar.routes import HTTPRoute

from lumiku_local import failpoints

FLUX = "avatar-creator:flux-dev-base"  # in the catalog, never installed in tests


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(spec: dict):
    for template, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield template, method.upper(), operation


def check_documented(spec: dict, method: str, template: str, response) -> None:
    """The answer's status is documented for this route, and its body fits the schema."""
    documented = spec["paths"][template][method.lower()]["responses"]
    status = str(response.status_code)
    assert status in documented, (
        f"{method} {template} answered {status}, documented: {sorted(documented)}: {response.text}"
    )
    schema = documented[status].get("content", {}).get("application/json", {}).get("schema")
    if schema is not None:
        validator = Draft202012Validator({**schema, "components": spec["components"]})
        errors = [error.message for error in validator.iter_errors(response.json())]
        assert not errors, (method, template, status, errors, response.text)


def test_every_documented_error_has_the_apps_error_shape(spec):
    seen = 0
    for template, method, operation in operations(spec):
        for status, answer in operation["responses"].items():
            if int(status) < 400 or template.endswith("health") or "/health/" in template:
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, template, status)
            seen += 1
    assert seen > 50
    error = spec["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"}
    assert "status_code" not in str(spec["components"]["schemas"])  # Litestar's own 400 is gone


def fill(template: str, value: str = "missing") -> str:
    return re.sub(r"\{[^}]+\}", value, template)


def test_real_error_answers_are_documented_for_their_route(app_client, settings, spec):
    """Every route is sent requests that must fail (unknown ids, unknown fields, numbers as text,
    text for numbers), then the failures that need a state: no credits, a model not installed, a
    finished generation, a bad or too large upload, a full disk, a held database."""
    client = app_client(make_settings(settings.home, max_upload_bytes=2_000))
    checked: list[tuple[str, str, int]] = []

    def call(method: str, template: str, path: str | None = None, **kwargs):
        response = client.request(method, path or fill(template), **kwargs)
        check_documented(spec, method, template, response)
        checked.append((method, template, response.status_code))
        return response

    for template, method, operation in operations(spec):
        body = operation.get("requestBody", {}).get("content", {})
        if "{" in template:
            call(method, template, json={} if "application/json" in body else None)
        if "application/json" in body:
            call(method, template, json={"misspeltOption": 1})
            call(method, template, json=[[[[[[[[]]]]]]]])
            call(
                method, template, content=b"{not json", headers={"content-type": "application/json"}
            )
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("type") == "integer":
                call(method, template, params={parameter["name"]: "1e3"})

    project = client.project()
    generate = f"{API}/projects/{{project_id}}/avatars/generate"
    upload = f"{API}/projects/{{project_id}}/avatars/upload"
    projects = f"{API}/projects"
    for body, status in (
        ({"prompt": "x", "count": "2"}, 400),
        ({"prompt": ""}, 422),
        ({"prompt": "x", "modelKey": FLUX}, 409),
        ({"prompt": "x", "modelKey": "nope"}, 404),
    ):
        assert call("POST", generate, fill(generate, project), json=body).status_code == status
    finished = client.generate(project)["generation"]["id"]
    client.wait_generation(finished)
    cancel = f"{API}/generations/{{generation_id}}/cancel"
    assert call("POST", cancel, fill(cancel, finished)).status_code == 409
    for content, status in (
        (b"not an image", 415),
        (b"\x89PNG\r\n\x1a\n" + bytes(3_000), 413),
        (b"", 422),
    ):
        files = {"file": ("photo.png", content, "image/png")}
        assert call("POST", upload, fill(upload, project), files=files).status_code == status
    assert call("POST", upload, fill(upload, project), data={"name": "x"}).status_code == 400
    client.patch("/api/admin/models/avatar-creator:instant", json={"creditCost": 600})
    poor = call("POST", generate, fill(generate, project), json={"prompt": "x", "count": 2})
    assert poor.status_code == 402
    failpoints.configure("sqlite.write=sqlite_full")
    assert call("POST", projects, json={"name": "x"}).status_code == 507
    failpoints.configure("sqlite.write=sqlite_locked")
    rename = f"{API}/projects/{{project_id}}"
    assert call("PATCH", rename, fill(rename, project), json={"name": "y"}).status_code == 503
    failpoints.configure("")

    statuses = {status for _, _, status in checked}
    assert {400, 402, 404, 409, 413, 415, 422, 503, 507} <= statuses, statuses
    assert len({template for _, template, _ in checked}) >= 15


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path) or "/"


def test_options_lists_every_method_of_an_address_and_405_carries_allow(client):
    routes = [route for route in client.app.routes if isinstance(route, HTTPRoute)]
    shared = [route for route in routes if len(route.methods - {"OPTIONS"}) > 1]
    assert len(shared) >= 3  # addresses with several methods: where Litestar 2 lists only one
    for route in routes:
        path = concrete(route.path)
        options = client.options(path)
        assert options.status_code == 204, path
        allowed = {method.strip() for method in options.headers["allow"].split(",")}
        assert allowed == set(route.methods), (path, allowed, route.methods)
        wrong = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in route.methods)
        refused = client.request(wrong, path, headers={"accept": "application/json"})
        assert refused.status_code == 405, (wrong, path, refused.text)
        assert {m.strip() for m in refused.headers["allow"].split(",")} == set(route.methods)
    wrong = client.put(f"{API}/projects/x")
    assert wrong.json()["error"] == {
        "code": "method_not_allowed",
        "message": "This address does not take PUT; it takes DELETE, GET, OPTIONS, PATCH.",
    }
