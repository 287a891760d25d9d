"""The dashboard's pages over HTTP: login, sessions, CSRF, roles, CSP, assets and paging."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from migratrack.web import create_app
from migratrack.web.session import COOKIE

from .live import LiveServer, serve_process


@contextmanager
def session_client(server: LiveServer, app: FastAPI, token: str) -> Iterator[httpx.Client]:
    """A client logged in with a one-time code for ``token``."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        code = app.state.sessions.issue_code(app.state.tokens.authenticate(token), token)
        assert c.get(f"/login?code={code}").status_code == 303
        yield c


def csrf_of(c: httpx.Client, path: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', c.get(path).text)
    assert m
    return m.group(1)


def test_root_and_dashboard_lead_to_the_list_and_pages_need_a_login(server: LiveServer, migration: str) -> None:
    with httpx.Client(base_url=server.url) as c:
        for path in ("/", "/dashboard"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/admin/migration"
        r = c.get(f"/admin/migration/{migration}")
        assert r.status_code == 303 and r.headers["location"] == f"/login?next=%2Fadmin%2Fmigration%2F{migration}"
        assert c.get(f"/admin/migration/{migration}/live.json").status_code == 401
        assert c.get(f"/admin/migration/{migration}/stream").status_code == 401
        assert c.get(f"/api/migrations/{migration}/events", params={"after": 0}).status_code == 401


def test_a_login_code_works_once_and_sets_a_strict_httponly_cookie(server: LiveServer, app: FastAPI,
                                                                   tokens: dict[str, str], migration: str) -> None:
    code = app.state.sessions.issue_code(app.state.tokens.authenticate(tokens["viewer"]), tokens["viewer"])
    with httpx.Client(base_url=server.url) as c:
        r = c.get(f"/login?code={code}&next=/admin/migration/{migration}")
        assert r.status_code == 303 and r.headers["location"] == f"/admin/migration/{migration}"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        assert tokens["viewer"] not in cookie
        page = c.get(f"/admin/migration/{migration}")
        assert page.status_code == 200 and "Move orders" in page.text
    with httpx.Client(base_url=server.url) as again:
        r = again.get(f"/login?code={code}")
        assert r.status_code == 401 and "used already or has expired" in r.text
        assert COOKIE not in r.headers.get("set-cookie", "")


def test_over_https_the_cookie_is_secure_and_next_never_leaves_the_site(server: LiveServer, app: FastAPI,
                                                                        tokens: dict[str, str]) -> None:
    with httpx.Client(base_url=server.url) as c:
        r = c.post("/login", data={"token": tokens["admin"], "next": "//evil.example/x"},
                   headers={"X-Forwarded-Proto": "https"})
        assert r.status_code == 303 and r.headers["location"] == "/admin/migration"
        assert "Secure" in r.headers["set-cookie"]
        r = c.post("/login", data={"token": "mt_wrong"})
        assert r.status_code == 401 and "unknown or revoked token" in r.text


def test_pages_forbid_inline_script_and_load_versioned_cacheable_assets(server: LiveServer, app: FastAPI,
                                                                        tokens: dict[str, str], migration: str) -> None:
    with session_client(server, app, tokens["admin"]) as c:
        for path in ("/admin/migration", f"/admin/migration/{migration}", f"/admin/migration/{migration}/audit",
                     "/login"):
            r = c.get(path)
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
            assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), f"inline script in {path}"
            assert not re.search(r"\son[a-z]+=", r.text), f"inline handler in {path}"
        page = c.get(f"/admin/migration/{migration}").text
        js = re.search(r'<script src="(/static/[0-9a-f]{12}/dashboard\.js)"', page)
        css = re.search(r'href="(/static/[0-9a-f]{12}/dashboard\.css)"', page)
        assert js and css
        for url in (js.group(1), css.group(1)):
            r = c.get(url)
            assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        stale = c.get("/static/000000000000/dashboard.js")
        assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
        assert c.get("/static/x/../../etc/passwd").status_code == 404
        assert c.get(f"/static/{js.group(1).split('/')[2]}/nope.js").status_code == 404


def test_the_server_refuses_actions_without_csrf_from_other_sites_and_from_weaker_roles(
        server: LiveServer, app: FastAPI, tokens: dict[str, str], migration: str,
        client: Callable[[str | None], httpx.Client]) -> None:
    url = f"/admin/migration/{migration}/control"
    with session_client(server, app, tokens["admin"]) as admin:
        csrf = csrf_of(admin, f"/admin/migration/{migration}")
        assert admin.post(url, data={"action": "pause"}).status_code == 403
        assert admin.post(url, data={"action": "pause", "csrf": "x" * 43}).status_code == 403
        r = admin.post(url, data={"action": "pause", "csrf": csrf}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        r = admin.post(url, data={"action": "explode", "csrf": csrf})
        assert r.status_code == 422
    for role in ("viewer", "operator"):  # pause is the admin's, as in the API
        with session_client(server, app, tokens[role]) as c:
            csrf = csrf_of(c, f"/admin/migration/{migration}")
            page = c.get(f"/admin/migration/{migration}").text
            assert "ctl-pause" not in page
            r = c.post(url, data={"action": "pause", "csrf": csrf}, headers={"Accept": "application/json"})
            assert r.status_code == 403 and f"you are {role}" in r.json()["detail"]
    assert client("admin").get(f"/api/migrations/{migration}/control").json()["control"] == "running"


def test_an_action_without_javascript_redirects_back_and_shows_its_result(
        server: LiveServer, app: FastAPI, tokens: dict[str, str], migration: str) -> None:
    with session_client(server, app, tokens["admin"]) as c:
        csrf = csrf_of(c, f"/admin/migration/{migration}")
        r = c.post(f"/admin/migration/{migration}/control", data={"action": "pause", "csrf": csrf,
                                                                  "reason": "<b>window</b>"})
        assert r.status_code == 303
        page = c.get(r.headers["location"]).text
        assert "flash-ok" in page and "paused: workers wait" in page
        assert "flash-" not in c.get(r.headers["location"]).text  # shown once
        c.post(f"/admin/migration/{migration}/control", data={"action": "cancel", "csrf": csrf})
        r = c.post(f"/admin/migration/{migration}/control", data={"action": "pause", "csrf": csrf})
        page = c.get(r.headers["location"]).text
        assert "flash-error" in page and "cancel" in page  # refused, and the page says why
        audit = c.get(f"/admin/migration/{migration}/audit").text
        assert "migration.paused" in audit and "&lt;b&gt;window&lt;/b&gt;" in audit
        assert "token:admin-bot/" in audit and "claims &#34;dashboard&#34;" in audit


def test_an_operator_acknowledges_alerts(server: LiveServer, app: FastAPI, tokens: dict[str, str], migration: str,
                                         admin: httpx.Client) -> None:
    alert = admin.post(f"/api/migrations/{migration}/alerts", json={"level": "error", "message": "lag"}).json()
    with session_client(server, app, tokens["operator"]) as c:
        csrf = csrf_of(c, f"/admin/migration/{migration}")
        r = c.post(f"/admin/migration/{migration}/alerts/{alert['id']}/ack", data={"csrf": csrf},
                   headers={"Accept": "application/json"})
        assert r.status_code == 200 and r.json()["ok"]
        r = c.post(f"/admin/migration/{migration}/alerts/nope/ack", data={"csrf": csrf},
                   headers={"Accept": "application/json"})
        assert r.status_code == 404 and not r.json()["ok"]
    got = admin.get(f"/api/migrations/{migration}/alerts").json()[0]
    assert got["acknowledged_by"].startswith("token:operator-bot/")  # as through the API: the token


def test_a_revoked_token_ends_its_sessions(server: LiveServer, app: FastAPI, tokens: dict[str, str],
                                           migration: str) -> None:
    with session_client(server, app, tokens["viewer"]) as c:
        assert c.get(f"/admin/migration/{migration}/live.json").status_code == 200
        app.state.tokens.revoke("viewer-bot")
        assert c.get(f"/admin/migration/{migration}/live.json").status_code == 401
        assert c.get(f"/admin/migration/{migration}").status_code == 303


def test_the_list_pages_through_hundreds_of_migrations(server: LiveServer, app: FastAPI,
                                                       tokens: dict[str, str]) -> None:
    svc = app.state.service
    for i in range(120):
        svc.initialize(f"m{i:03d}", [{"id": "a", "requires_approval": i % 10 == 0}], name=f"Move {i}",
                       actor="test")
    with session_client(server, app, tokens["viewer"]) as c:
        first = c.get("/admin/migration").text
        assert first.count("<tr class=") == 50 and "Move 119" in first and "page 1 of 3" in first
        assert "waiting for approval: a" in first  # m110 waits for approval
        last = c.get("/admin/migration?page=3").text
        assert last.count("<tr class=") == 20 and "Move 0<" in last
        assert c.get("/admin/migration?page=0").status_code == 422


def test_audit_log_and_sub_tasks_are_paged(server: LiveServer, app: FastAPI, tokens: dict[str, str],
                                           admin: httpx.Client) -> None:
    plan = [{"id": "copy", "sub_tasks": [f"t{i:03d}" for i in range(250)]}]
    assert admin.post("/api/migrations", json={"id": "many", "phases": plan}).status_code == 201
    admin.post("/api/migrations/many/phases/copy/start")
    for i in range(120):
        admin.post("/api/migrations/many/phases/copy/progress", json={"metadata": {"step": i}})
    with session_client(server, app, tokens["viewer"]) as c:
        latest = c.get("/admin/migration/many/audit").text
        assert latest.count("<tr><td>") == 100 and "← older" in latest
        oldest = c.get("/admin/migration/many/audit?after=0").text
        assert "migration.initialized" in oldest and "newer →" in oldest
        subs = c.get("/admin/migration/many/phases/copy/subtasks").text
        assert subs.count('<tr class="status-') == 200 and "Show the next 50 of 50 more" in subs
        rest = c.get("/admin/migration/many/phases/copy/subtasks?offset=200").text
        assert rest.count('<tr class="status-') == 50 and "t249" in rest and "Show the next" not in rest
        assert c.get("/admin/migration/many/phases/nope/subtasks").status_code == 404
        assert c.get("/admin/migration/nope").status_code == 404


def test_without_authentication_the_page_opens_but_actions_still_need_csrf(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path}/open.db", auth=False)
    app.state.service.initialize("m", [{"id": "a"}], actor="test")
    live = LiveServer(app).start()
    try:
        with httpx.Client(base_url=live.url) as c:
            page = c.get("/admin/migration/m")
            assert page.status_code == 200 and "ctl-pause" in page.text
            assert c.post("/admin/migration/m/control", data={"action": "pause"}).status_code == 403
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
            assert csrf
            r = c.post("/admin/migration/m/control", data={"action": "pause", "csrf": csrf.group(1)},
                       headers={"Accept": "application/json"})
            assert r.status_code == 200
    finally:
        live.stop()


@pytest.mark.slow
def test_serve_prints_a_one_time_login_link_not_the_token(tmp_path: Path) -> None:
    with serve_process("--storage", f"sqlite:///{tmp_path}/s.db") as (url, lines):
        token = next(line.strip() for line in lines if line.strip().startswith("mt_"))
        link = next(line.split("dashboard: ", 1)[1].strip() for line in lines if "dashboard: " in line)
        assert link.startswith(f"{url}/login?code=") and token not in link
        with httpx.Client() as c:
            r = c.get(link)
            assert r.status_code == 303 and COOKIE in r.headers["set-cookie"]
            assert c.get(f"{url}/admin/migration").status_code == 200
            assert c.get(link).status_code == 401  # once


def test_a_token_limited_to_one_migration_sees_only_that_one(server: LiveServer, app: FastAPI,
                                                            migration: str, admin: httpx.Client) -> None:
    assert admin.post("/api/migrations", json={"id": "other", "phases": [{"id": "a"}]}).status_code == 201
    token, _ = app.state.tokens.create("ci", "admin", migrations=[migration])
    with session_client(server, app, token) as c:
        listed = c.get("/admin/migration").text
        assert f"/admin/migration/{migration}" in listed and "/admin/migration/other" not in listed
        assert c.get(f"/admin/migration/{migration}").status_code == 200
        assert c.get("/admin/migration/other").status_code == 403
        assert c.get("/admin/migration/other/live.json").status_code == 403
        csrf = csrf_of(c, f"/admin/migration/{migration}")
        r = c.post("/admin/migration/other/control", data={"csrf": csrf, "action": "pause"},
                   headers={"Accept": "application/json"})
        assert r.status_code == 403
    assert admin.get("/api/migrations/other/control").json()["control"] == "running"


def test_an_operator_silences_alerts_like_one_for_an_hour(server: LiveServer, app: FastAPI, tokens: dict[str, str],
                                                          migration: str, admin: httpx.Client) -> None:
    alert = admin.post(f"/api/migrations/{migration}/alerts",
                       json={"level": "warning", "message": "replica lag 40 s", "phase": "copy"}).json()
    with session_client(server, app, tokens["viewer"]) as c:
        page = c.get(f"/admin/migration/{migration}").text
        assert "Silence 1 h" not in page  # a viewer has no controls
        csrf = csrf_of(c, f"/admin/migration/{migration}")
        r = c.post(f"/admin/migration/{migration}/alerts/{alert['id']}/silence", data={"csrf": csrf},
                   headers={"Accept": "application/json"})
        assert r.status_code == 403
    with session_client(server, app, tokens["operator"]) as c:
        assert "Silence 1 h" in c.get(f"/admin/migration/{migration}").text
        csrf = csrf_of(c, f"/admin/migration/{migration}")
        r = c.post(f"/admin/migration/{migration}/alerts/{alert['id']}/silence", data={"csrf": csrf},
                   headers={"Accept": "application/json"})
        assert r.status_code == 200 and r.json()["ok"] and "silenced until" in r.json()["message"]
    silences = admin.get("/api/alerts/silences").json()
    assert [(s["migration_id"], s["phase"], s["contains"]) for s in silences] == [
        (migration, "copy", "replica lag 40 s")]
    assert silences[0]["created_by"].startswith("token:operator-bot/")


def test_servers_that_share_a_session_secret_share_the_browsers_sessions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two instances behind a load balancer (one store, one MIGRATRACK_SESSION_SECRET): a browser
    logged in on one is logged in on the other, a restart keeps it logged in, logging out on one
    logs it out on both; an instance with another secret (or none) does not take the cookie, and
    the store holds no secret."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("MIGRATRACK_SESSION_SECRET", "a-secret-shared-by-the-instances")
    a, b = create_app(url), create_app(url)
    token, _ = a.state.tokens.create("ops", "admin")
    a.state.service.initialize("m1", [{"id": "copy"}], name="Move orders", actor="t")
    sa, sb = LiveServer(a).start(), LiveServer(b).start()
    try:
        with httpx.Client(base_url=sa.url) as browser:
            code = a.state.sessions.issue_code(a.state.tokens.authenticate(token), token)
            assert browser.get(f"/login?code={code}").status_code == 303
            cookie = browser.cookies[COOKIE]
            with httpx.Client(base_url=sb.url, cookies={COOKIE: cookie}) as on_b:
                page = on_b.get("/admin/migration/m1")
                assert page.status_code == 200 and "Move orders" in page.text
                csrf = csrf_of(on_b, "/admin/migration/m1")
                r = on_b.post("/admin/migration/m1/control", data={"action": "pause", "csrf": csrf},
                              headers={"Accept": "application/json"})
                assert r.status_code == 200, r.text  # the CSRF token of a's session holds on b
            restarted = create_app(url)
            assert restarted.state.sessions.get(cookie) is not None
            monkeypatch.setenv("MIGRATRACK_SESSION_SECRET", "another-secret-entirely-here")
            assert create_app(url).state.sessions.get(cookie) is None
            monkeypatch.delenv("MIGRATRACK_SESSION_SECRET")
            assert create_app(url).state.sessions.get(cookie) is None
            forged = cookie.rsplit(".", 1)[0] + "." + "A" * 43
            assert a.state.sessions.get(forged) is None
            assert browser.post("/logout", data={"csrf": csrf}).status_code == 303
            with httpx.Client(base_url=sb.url, cookies={COOKIE: cookie}) as on_b:
                assert on_b.get("/admin/migration/m1/live.json").status_code == 401  # logged out on b too
        raw = (tmp_path / "shared.db").read_bytes()
        assert b"a-secret-shared-by-the-instances" not in raw
    finally:
        sa.stop()
        sb.stop()
