"""DESIGN §6: Host check, same-origin writes, a token beyond loopback."""

from conftest import API, BASE_URL, Client

from lumiku_local.app import create_app


def test_foreign_host_header_is_refused(client):
    response = client.get("/api/me", headers={"host": "evil.example:8765"})
    assert response.status_code == 421
    assert response.json()["error"]["code"] == "bad_host"
    assert client.get("/api/me", headers={"host": "localhost:8765"}).status_code == 200


def test_cross_origin_write_is_refused_and_changes_nothing(client):
    for headers in (
        {"origin": "http://evil.example"},
        {"origin": "http://127.0.0.1:9999"},  # another local app
        {"sec-fetch-site": "cross-site"},
        {"origin": "null"},
    ):
        response = client.post(f"{API}/projects", json={"name": "x"}, headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["error"]["code"] == "cross_origin"
    assert client.get(f"{API}/projects").json()["projects"] == []


def test_same_origin_write_is_allowed(client):
    for headers in ({"origin": BASE_URL}, {"sec-fetch-site": "same-origin"}):
        response = client.post(f"{API}/projects", json={"name": "ok"}, headers=headers)
        assert response.status_code == 201


def test_cross_origin_read_is_allowed_but_not_shared(client):
    response = client.get("/api/me", headers={"origin": "http://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_non_loopback_binding_requires_the_token(settings):
    shared = settings.with_changes(host="0.0.0.0", access_token="s3cret-token")
    with Client(app=create_app(shared), base_url="http://192.0.2.10:8765") as client:
        assert client.get("/api/me").status_code == 401
        assert client.get("/api/me", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/me?token=s3cret-token").status_code == 200
        ok = client.post(
            f"{API}/projects",
            json={"name": "x"},
            headers={"x-lumiku-token": "s3cret-token", "origin": "http://elsewhere"},
        )
        assert ok.status_code == 201


def test_generated_token_is_stored_in_the_data_dir(settings):
    shared = settings.with_changes(host="0.0.0.0")
    with Client(app=create_app(shared), base_url="http://192.0.2.10:8765") as client:
        token = (settings.home / "access-token").read_text().strip()
        assert len(token) >= 24
        assert client.get("/api/me").status_code == 401
        assert (
            client.get("/api/me", headers={"authorization": f"Bearer {token}"}).status_code == 200
        )


def test_a_browser_keeps_the_token_in_a_cookie_that_never_excuses_a_cross_site_change(settings):
    shared = settings.with_changes(host="0.0.0.0", access_token="s3cret-token")
    with Client(app=create_app(shared), base_url="http://192.0.2.10:8765") as client:
        page = client.get("/projects?token=s3cret-token", headers={"accept": "text/html"})
        assert page.status_code == 200
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("lumiku_token=s3cret-token;")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # the page's assets and event stream carry the cookie, not the query
        assert client.get("/assets/app.css").status_code == 200
        assert client.get("/api/me").status_code == 200
        same_site = client.post(
            "/ui/projects", data={"name": "ok"}, headers={"sec-fetch-site": "same-origin"}
        )
        assert same_site.status_code == 200
        cross_site = client.post(
            f"{API}/projects", json={"name": "x"}, headers={"sec-fetch-site": "cross-site"}
        )
        assert cross_site.status_code == 403
        client.cookies.clear()
        client.cookies.set("lumiku_token", "wrong")
        assert client.get("/api/me").status_code == 401


# ---------------------------------------------------------------- hostile input


def test_json_nested_100000_deep_is_400_and_changes_nothing(client):
    project = client.project()
    deep = b"[" * 100_000 + b"]" * 100_000
    bodies = (
        deep,
        b'{"prompt": "x", "count": ' + deep + b"}",
        b'{"prompt": "x", "misspelt": ' + deep + b"}",
        b'{"name": ' + b"[" * 100_000,
    )
    for method, path in (
        ("POST", f"{API}/projects"),
        ("PATCH", f"{API}/projects/{project}"),
        ("POST", f"{API}/projects/{project}/avatars/generate"),
        ("PATCH", "/api/admin/models/avatar-creator:instant"),
        ("POST", "/api/settings/hf-token"),
    ):
        for body in bodies:
            response = client.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 400, (path, body[:30], response.text)
            assert response.json()["error"]["code"] == "invalid_input"
    assert client.balance() == 1000
    assert [p["name"] for p in client.get(f"{API}/projects").json()["projects"]] == ["My project"]


def test_hostile_asset_paths_are_4xx_not_500(client, live_server):
    import http.client
    from urllib.parse import urlsplit

    paths = {
        "/assets/%00": 404,
        "/assets/a%00b": 404,
        "/assets/..%00/etc/passwd": 404,
        "/assets/" + "a" * 10_000: 414,
        "/assets/" + "a/" * 5_000: 414,
    }
    for path, status in paths.items():
        response = client.get(path)
        assert response.status_code == status, (path[:40], response.text)
        assert response.json()["error"]["code"] in ("not_found", "uri_too_long")
    address = urlsplit(live_server)
    for path, status in paths.items():  # and over real HTTP, as a browser or curl sends them
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        connection.request("GET", path)
        assert connection.getresponse().status == status, path[:40]
        connection.close()
    assert client.get("/assets/app.css").status_code == 200
