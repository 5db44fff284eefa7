"""The feature on real Postgres and Redis, through the real HTTP server."""

from __future__ import annotations

import httpx
import pytest

from tests.support.services import PostgresServer, RedisServer, app_env

pytestmark = pytest.mark.services


@pytest.fixture
def app(postgres_server: PostgresServer, redis_server: RedisServer, migrated_database: str, start_app):
    return start_app(app_env(postgres_server, redis_server, migrated_database))


def test_create_read_and_list_notes(app, redis_server: RedisServer) -> None:
    with httpx.Client(base_url=app.base_url, timeout=5) as client:
        created = client.post("/notes", json={"title": "deploy", "body": "migrations before code"})
        assert created.status_code == 201, created.text
        note = created.json()
        assert note["word_count"] == 3

        fetched = client.get(f"/notes/{note['id']}")
        assert fetched.status_code == 200
        assert fetched.json() == note
        # Cache-aside: the read left the note in Redis.
        assert redis_server.cli("EXISTS", f"notes:v1:{note['id']}") == "1"
        assert client.get(f"/notes/{note['id']}").json() == note

        assert client.get("/notes").json()[0] == note
        assert client.get("/notes/999999").status_code == 404


@pytest.mark.parametrize(
    "payload",
    [{"body": "no title"}, {"title": "", "body": "x"}, {"title": "x" * 201, "body": ""}, {"title": "t"}, ["x"]],
)
def test_invalid_notes_are_rejected(app, payload: object) -> None:
    response = httpx.post(app.base_url + "/notes", json=payload, timeout=5)
    assert response.status_code == 422, response.text


def test_the_list_is_paged_newest_first(app) -> None:
    with httpx.Client(base_url=app.base_url, timeout=5) as client:
        ids = [client.post("/notes", json={"title": f"n{n}", "body": ""}).json()["id"] for n in range(5)]
        pages: list[list[int]] = []
        url: str | None = "/notes?limit=2"
        while url:
            response = client.get(url)
            assert response.status_code == 200, response.text
            pages.append([note["id"] for note in response.json()])
            url = response.links.get("next", {}).get("url")
        assert pages == [ids[:2:-1], ids[2:0:-1], ids[:1]]
        assert len(client.get("/notes").json()) == 5, "default limit 50"


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "before=-1", "before=" + "9" * 30])
def test_bad_paging_parameters_are_named(app, query: str) -> None:
    response = httpx.get(f"{app.base_url}/notes?{query}", timeout=5)
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()["error"]


def test_metrics_follow_the_contract(app) -> None:
    with httpx.Client(base_url=app.base_url, timeout=5) as client:
        note_id = client.post("/notes", json={"title": "a", "body": "b"}).json()["id"]
        client.get(f"/notes/{note_id}")
        client.get("/no-such-route")
        text = client.get("/metrics").text
    version = 'version="test-sha"'
    assert f'http_requests_total{{method="POST",route="/notes",status="201",{version}}} 1.0' in text
    # Labelled by route template, not raw path: ids never multiply the series.
    assert f'http_requests_total{{method="GET",route="/notes/{{note_id}}",status="200",{version}}}' in text
    assert f'route="unmatched",status="404",{version}' in text
    assert f'http_request_duration_seconds_bucket{{le="0.05",method="POST",route="/notes",{version}}}' in text
    assert f"app_info{{{version}}} 1.0" in text


def test_logs_are_json_on_stdout_without_secrets(app, postgres_server: PostgresServer) -> None:
    httpx.get(app.base_url + "/healthz", timeout=5)
    lines = app.log_lines()
    assert any(line["msg"] == "started" for line in lines)
    assert all({"ts", "level", "msg", "version"} <= line.keys() for line in lines)
    assert postgres_server.url() not in app.log_path.read_text()
