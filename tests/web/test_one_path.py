"""One handler per route: the hot routes (progress, batches) answer like every other route —
the same middleware, validation and error shapes — whatever the request's content type."""

from __future__ import annotations

import itertools

import httpx
import pytest

HOT = "/api/migrations/m1/phases/schema/progress"
COLD = "/api/migrations/m1/phases/schema/fail"


@pytest.fixture
def running(admin: httpx.Client, migration: str) -> httpx.Client:
    assert admin.post(f"/api/migrations/{migration}/phases/schema/start").status_code == 200
    return admin


@pytest.mark.parametrize("ctype", ["application/json", "application/vnd.x+json", "application/json; charset=utf-8"])
def test_json_bodies_are_read_alike_on_hot_and_cold_routes(running: httpx.Client, ctype: str | None) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    hot = running.post(HOT, content=b'{"progress": 30}', headers=headers)
    assert hot.status_code == 200, hot.text
    assert hot.json() == {"control": "running"}
    # the same content type on a route the dependency solver fills: read as JSON too
    cold = running.post(COLD, content=b'{"error": 5}', headers=headers)
    assert cold.status_code == 422
    assert cold.json()["fields"][0]["field"] == "body.error"


def test_a_body_that_is_not_json_gets_the_same_422_shape(running: httpx.Client) -> None:
    for (path, body), ctype in itertools.product(((HOT, b'{"progress": 30}'), (COLD, b'{"error": "x"}')),
                                                 ("application/x-www-form-urlencoded", "text/plain", None)):
        # a JSON body without a JSON type is refused on every route: a browser page on another
        # site can send such a body with no CORS preflight
        r = running.post(path, content=body, headers={"Content-Type": ctype} if ctype else {})
        assert r.status_code == 422, (path, ctype, r.text)
        assert set(r.json()) >= {"detail", "error", "fields"}
        assert r.json()["error"] == "ValidationError"


def test_hot_routes_pass_the_body_limit_and_auth_like_the_rest(client: httpx.Client, running: httpx.Client) -> None:
    big = b'{"progress": 1, "metadata": {"x": "' + b"a" * (1024 * 1024) + b'"}}'
    for path in (HOT, COLD, "/api/migrations/m1/batch"):
        r = running.post(path, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, path
        assert r.json()["error"] == "PayloadTooLarge"
    viewer = client("viewer")  # type: ignore[operator]
    assert viewer.post(HOT, json={"progress": 40}).status_code == 403
    assert client(None).post(HOT, json={"progress": 40}).status_code == 401  # type: ignore[operator]
    assert running.post(HOT, json={"progress": 140}).json()["fields"] == [
        {"field": "body.progress", "message": "Input should be less than or equal to 100"}]
    too_long = "x" * 201
    r = running.post(f"/api/migrations/{too_long}/phases/schema/progress", json={"progress": 1})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "path.mid"


def test_the_hot_routes_are_documented_like_the_rest(running: httpx.Client) -> None:
    spec = running.get("/openapi.json").json()
    op = spec["paths"]["/api/migrations/{mid}/phases/{phase}/progress"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ProgressIn")
    assert {"401", "403", "404", "409", "422"} <= set(op["responses"])
    assert "/api/migrations/{mid}/batch" in spec["paths"]
