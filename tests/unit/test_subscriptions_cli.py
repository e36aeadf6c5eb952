"""`storywatch subscriptions`: the request body from flags, URL and token resolution, error
messages (field shown, token masked) and the command group. No network: the HTTP layer is
replaced by a stub opener that records requests and replays canned answers."""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import pytest
from click.testing import CliRunner

from config.exceptions import StorywatchError
from config.settings import load_settings
from streams.cli import main
from streams.subscriptions import client as sc
from streams.subscriptions.client import (
    ApiClient,
    ApiConfigError,
    ApiError,
    RequestBodyError,
    build_body,
    load_json_body,
    mask_secret,
    parse_growth_steps,
    resolve_base_url,
    resolve_token,
)

TOKEN = "tok-s3cr3t-value"
BASE = "http://worker.test:6066"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No STORYWATCH_* variable of the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("STORYWATCH_"):
            monkeypatch.delenv(name)
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


# --- a stub HTTP layer -------------------------------------------------------------------


class _Response:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self._body = io.BytesIO(body)

    def read(self, size: int = -1) -> bytes:
        return self._body.read(size)

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


Answer = Callable[[urllib.request.Request], _Response]


class _Opener:
    """Records each request; ``answer`` returns a response or raises (as urllib would)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[urllib.request.Request] = []

    def open(self, request: urllib.request.Request, timeout: float) -> _Response:
        self.requests.append(request)
        return self.answer(request)


def _json(status: int, body: Any) -> Answer:
    return lambda _req: _Response(status, json.dumps(body).encode())


def _http_error(
    status: int, body: bytes, headers: dict[str, str] | None = None
) -> Callable[[urllib.request.Request], Any]:
    def answer(req: urllib.request.Request) -> Any:
        msg = Message()
        for key, value in (headers or {}).items():
            msg[key] = value
        raise urllib.error.HTTPError(req.full_url, status, "Reason", msg, io.BytesIO(body))

    return answer


def _raise(exc: BaseException) -> Callable[[urllib.request.Request], Any]:
    def answer(_req: urllib.request.Request) -> Any:
        raise exc

    return answer


def _client(answer: Callable[[urllib.request.Request], Any]) -> tuple[ApiClient, _Opener]:
    client = ApiClient(BASE, TOKEN)
    opener = _Opener(answer)
    client._opener = opener  # type: ignore[assignment]
    return client, opener


# --- build_body --------------------------------------------------------------------------


def test_build_body_every_flag_gives_the_exact_body() -> None:
    body = build_body(
        name="Ukraine grain",
        any_phrases=("grain deal", "Black Sea"),
        all_phrases=("Ukraine",),
        none_phrases=("football",),
        query="grain exports through the Black Sea",
        threshold=0.5,
        allow_sources=("Reuters",),
        deny_sources=("Daily Mail", "Sun"),
        min_size=3,
        min_sources=2,
        triggers=("new_story", "emerging", "growth"),
        growth_steps=[10, 25, 50, 100],
        webhook="https://hooks.example.com/sw",
        webhook_format="cloudevents",
    )
    assert body == {
        "name": "Ukraine grain",
        "filter": {
            "keywords": {
                "any": ["grain deal", "Black Sea"],
                "all": ["Ukraine"],
                "none": ["football"],
            },
            "query": "grain exports through the Black Sea",
            "query_threshold": 0.5,
            "sources": {"allow": ["Reuters"], "deny": ["Daily Mail", "Sun"]},
            "min_size": 3,
            "min_sources": 2,
            "triggers": ["new_story", "emerging", "growth"],
            "growth_steps": [10, 25, 50, 100],
        },
        "delivery": {"webhook": {"url": "https://hooks.example.com/sw", "format": "cloudevents"}},
    }
    json.dumps(body)  # JSON-able as is


def test_build_body_sends_only_the_parts_given() -> None:
    assert build_body(name="all stories") == {"name": "all stories"}
    assert build_body(name="n", all_phrases=("a",), deny_sources=("x",)) == {
        "name": "n",
        "filter": {"keywords": {"all": ["a"]}, "sources": {"deny": ["x"]}},
    }
    # A webhook without --format leaves the format to the API's default.
    assert build_body(name="n", webhook="https://h.example/x") == {
        "name": "n",
        "delivery": {"webhook": {"url": "https://h.example/x"}},
    }
    # Zero is a value given (the API judges it), not an omitted part.
    assert build_body(name="n", min_size=0, threshold=0.0) == {
        "name": "n",
        "filter": {"query_threshold": 0.0, "min_size": 0},
    }


def test_build_body_json_body_is_sent_as_is() -> None:
    given = {"name": "raw", "filter": {"min_size": 4}, "enabled": False}
    assert build_body(json_body=given) == given


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"name": "n"}, "--name"),
        ({"any_phrases": ("a",)}, "--any"),
        ({"min_size": 2}, "--min-size"),
        ({"triggers": ("growth",), "growth_steps": [5]}, "--trigger, --growth-steps"),
        ({"webhook": "https://h.example/x"}, "--webhook"),
    ],
)
def test_build_body_json_body_excludes_other_flags(flags: dict[str, Any], named: str) -> None:
    with pytest.raises(RequestBodyError, match=f"drop {named} "):
        build_body(json_body={"name": "raw"}, **flags)


def test_build_body_needs_a_name_and_a_webhook_for_format() -> None:
    with pytest.raises(RequestBodyError, match="--name is required"):
        build_body(any_phrases=("a",))
    with pytest.raises(RequestBodyError, match=r"--format .* --webhook"):
        build_body(name="n", webhook_format="slack")


def test_parse_growth_steps() -> None:
    assert parse_growth_steps("10,25, 50") == [10, 25, 50]
    with pytest.raises(RequestBodyError, match="'x' is not a whole number"):
        parse_growth_steps("10,x")


def test_load_json_body() -> None:
    assert load_json_body('{"name": "n"}') == {"name": "n"}
    with pytest.raises(RequestBodyError, match=r"not JSON \(line 1, column"):
        load_json_body("{name")
    with pytest.raises(RequestBodyError, match="JSON object"):
        load_json_body("[1, 2]")


# --- base URL and token ------------------------------------------------------------------


def test_base_url_flag_beats_env_beats_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"STORYWATCH_API_URL": "http://from-env:7000/"}
    assert resolve_base_url("http://flag:1234/", environ=env) == "http://flag:1234"
    assert resolve_base_url(None, environ=env) == "http://from-env:7000"
    assert resolve_base_url("", environ={}, web_host="10.0.0.5", web_port=8080) == (
        "http://10.0.0.5:8080"
    )
    # Nothing given: the worker's own settings (STORYWATCH_WEB_HOST / _PORT).
    monkeypatch.setenv("STORYWATCH_WEB_PORT", "6123")
    assert resolve_base_url() == "http://127.0.0.1:6123"
    monkeypatch.setenv("STORYWATCH_API_URL", "https://api.example/sw")
    assert resolve_base_url() == "https://api.example/sw"


def test_base_url_from_a_bind_address() -> None:
    assert resolve_base_url(environ={}, web_host="0.0.0.0", web_port=1) == "http://127.0.0.1:1"
    assert resolve_base_url(environ={}, web_host="::", web_port=1) == "http://[::1]:1"
    assert resolve_base_url(environ={}, web_host="fe80::1", web_port=1) == "http://[fe80::1]:1"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://host", "must be an http\\(s\\) URL"),
        ("127.0.0.1:6066", "must be an http\\(s\\) URL"),
        ("http://host:99999", "not a valid URL"),
        ("http://host/?x=1", "query or fragment"),
    ],
)
def test_base_url_rejects_what_cannot_work(url: str, problem: str) -> None:
    with pytest.raises(ApiConfigError, match=problem):
        resolve_base_url(url, environ={})


def test_base_url_with_credentials_is_refused_and_masked() -> None:
    with pytest.raises(ApiConfigError) as info:
        resolve_base_url(None, environ={"STORYWATCH_API_URL": f"http://me:{TOKEN}@host"})
    assert "STORYWATCH_API_URL=http://me:***@host" in str(info.value)
    assert TOKEN not in str(info.value)


def test_token_flag_beats_env_and_is_checked() -> None:
    env = {"STORYWATCH_API_TOKEN": " env-token \n"}
    assert resolve_token("flag-token", environ=env) == "flag-token"
    assert resolve_token(None, environ=env) == "env-token"
    assert resolve_token(None, environ={}) == ""
    with pytest.raises(ApiConfigError, match="STORYWATCH_API_TOKEN holds a control") as info:
        resolve_token(None, environ={"STORYWATCH_API_TOKEN": "abc\r\nX-Evil: 1"})
    assert "abc" not in str(info.value)


# --- the client: requests sent -----------------------------------------------------------


def test_client_sends_bearer_token_json_and_quoted_ids() -> None:
    client, opener = _client(_json(201, {"id": "sub_1", "secret": "whsec_x"}))
    assert client.create({"name": "n"}) == {"id": "sub_1", "secret": "whsec_x"}
    req = opener.requests[0]
    assert req.get_method() == "POST"
    assert req.full_url == f"{BASE}/api/subscriptions"
    assert req.get_header("Authorization") == f"Bearer {TOKEN}"
    assert req.get_header("Content-type") == "application/json"
    assert json.loads(req.data) == {"name": "n"}  # type: ignore[arg-type]

    client.get("../admin?x")
    assert opener.requests[1].full_url == f"{BASE}/api/subscriptions/..%2Fadmin%3Fx"
    with pytest.raises(ApiError, match="id is empty"):
        client.get(" ")


def test_client_without_token_sends_no_authorization() -> None:
    client, opener = _client(_json(200, {"id": "s"}))
    client._token = ""
    client.get("s")
    assert opener.requests[0].get_header("Authorization") is None


def test_client_follows_cursors_to_list_all() -> None:
    pages = {
        None: {"subscriptions": [{"id": "a"}, {"id": "b"}], "next_cursor": "c1"},
        "c1": {"subscriptions": [{"id": "c"}], "next_cursor": None},
    }

    def answer(req: urllib.request.Request) -> _Response:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(req.full_url).query)
        assert query["limit"] == ["100"]
        cursor = query.get("cursor", [None])[0]
        return _Response(200, json.dumps(pages[cursor]).encode())

    client, opener = _client(answer)
    assert [s["id"] for s in client.list_all()] == ["a", "b", "c"]
    assert len(opener.requests) == 2


def test_client_stops_on_a_repeated_cursor() -> None:
    client, _ = _client(_json(200, {"subscriptions": [], "next_cursor": "same"}))
    with pytest.raises(ApiError, match="repeated next_cursor"):
        client.list_all()


def test_client_delete_test_and_deliveries() -> None:
    client, opener = _client(lambda _req: _Response(204, b""))
    client.delete("sub_1")
    assert opener.requests[0].get_method() == "DELETE"

    client, opener = _client(_json(202, {"webhook_id": "msg_1", "status": "queued"}))
    assert client.test("sub_1")["status"] == "queued"
    assert opener.requests[0].full_url.endswith("/api/subscriptions/sub_1/test")

    rows = [{"webhook_id": "msg_1", "outcome": "delivered"}]
    client, _ = _client(_json(200, {"deliveries": rows}))
    assert client.deliveries("sub_1") == rows


def test_rotate_secret_prints_the_new_secret_and_the_grace() -> None:
    answer = {
        "id": "sub_1",
        "secret": "whsec_bmV3",
        "previous_secret_valid_until": "2026-12-08T10:00:00Z",
    }
    client, opener = _client(_json(200, answer))
    assert client.rotate_secret("sub_1") == answer
    assert opener.requests[0].get_method() == "POST"
    assert opener.requests[0].full_url.endswith("/api/subscriptions/sub_1/rotate-secret")


def test_client_rejects_an_answer_of_the_wrong_shape() -> None:
    client, _ = _client(_json(200, ["not", "an", "object"]))
    with pytest.raises(ApiError, match="not a JSON object"):
        client.get("s")
    client, _ = _client(lambda _req: _Response(200, b"<html>"))
    with pytest.raises(ApiError, match="not JSON"):
        client.get("s")


# --- the client: error messages ----------------------------------------------------------


def test_api_error_shows_the_field() -> None:
    body = b'{"error": "filter.min_size must be a whole number >= 1", "field": "filter.min_size"}'
    client, _ = _client(_http_error(400, body))
    with pytest.raises(ApiError) as info:
        client.create({"name": "n", "filter": {"min_size": 0}})
    assert str(info.value) == (
        "filter.min_size must be a whole number >= 1 (field filter.min_size)"
    )
    assert (info.value.status, info.value.field) == (400, "filter.min_size")
    assert isinstance(info.value, StorywatchError)
    assert str(ApiError("gone", status=404)) == "gone"


def test_api_error_masks_the_token() -> None:
    body = json.dumps({"error": f"token {TOKEN} owns no sub_9", "field": "id"}).encode()
    client, _ = _client(_http_error(404, body))
    with pytest.raises(ApiError) as info:
        client.get("sub_9")
    assert TOKEN not in str(info.value)
    assert str(info.value) == "token *** owns no sub_9 (field id)"
    assert TOKEN not in repr(client)
    assert mask_secret(f"a {TOKEN} b {TOKEN}", TOKEN) == "a *** b ***"
    assert mask_secret("as is", "") == "as is"


def test_401_says_which_token_to_set() -> None:
    client, _ = _client(_http_error(401, b'{"error": "unknown bearer token"}'))
    with pytest.raises(ApiError, match=r"set STORYWATCH_API_TOKEN \(or --token\)") as info:
        client.list_all()
    assert "STORYWATCH_API_TOKENS" in str(info.value)
    assert info.value.status == 401


def test_non_json_error_and_redirect() -> None:
    client, _ = _client(_http_error(404, b"404: Not Found"))
    with pytest.raises(ApiError, match=r"GET /api/subscriptions/x answered 404 .*new enough"):
        client.get("x")
    client, _ = _client(_http_error(302, b"", {"Location": "https://elsewhere.example/"}))
    with pytest.raises(ApiError, match=r"redirected \(302\) to https://elsewhere\.example/"):
        client.get("x")


@pytest.mark.parametrize(
    "exc",
    [
        urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
        urllib.error.URLError(TimeoutError("timed out")),
        TimeoutError("timed out"),
    ],
)
def test_no_worker_message(exc: BaseException) -> None:
    client, _ = _client(_raise(exc))
    with pytest.raises(ApiError) as info:
        client.list_all()
    assert str(info.value) == (
        f"no Storywatch worker answers at {BASE}: start `storywatch worker` or set "
        "STORYWATCH_API_URL"
    )
    assert info.value.status is None


# --- the command group -------------------------------------------------------------------


def test_help_lists_the_seven_commands() -> None:
    result = CliRunner().invoke(main, ["subscriptions", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("add", "list", "show", "rm", "test", "rotate-secret", "deliveries"):
        assert f"  {command} " in result.output
    for command in ("add", "list", "show", "rm", "test", "rotate-secret", "deliveries"):
        sub = CliRunner().invoke(main, ["subscriptions", command, "--help"])
        assert sub.exit_code == 0, sub.output
        assert "--url" in sub.output


def test_add_json_body_with_flags_is_a_clean_error() -> None:
    result = CliRunner().invoke(
        main, ["subscriptions", "add", "--json-body", "-", "--any", "x"], input='{"name": "n"}'
    )
    assert result.exit_code == 1
    assert "storywatch: error: --json-body sends the file as is: drop --any" in result.output


def _stub_urllib(monkeypatch: pytest.MonkeyPatch, answer: Answer) -> _Opener:
    opener = _Opener(answer)
    monkeypatch.setattr(sc.urllib.request, "build_opener", lambda *_handlers: opener)
    return opener


def test_add_prints_id_secret_and_how_to_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    opener = _stub_urllib(monkeypatch, _json(201, {"id": "sub_1", "name": "n", "secret": "wh"}))
    result = CliRunner().invoke(
        main,
        ["subscriptions", "add", "--url", BASE, "--token", TOKEN, "--name", "n", "--any", "a"],
    )
    assert result.exit_code == 0, result.output
    assert "sub_1" in result.output
    assert "secret: wh" in result.output
    assert "shown only once" in result.output
    assert "Standard Webhooks" in result.output
    assert TOKEN not in result.output
    assert json.loads(opener.requests[0].data) == {  # type: ignore[arg-type]
        "name": "n",
        "filter": {"keywords": {"any": ["a"]}},
    }


def test_list_table_and_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    subs = [
        {
            "id": "sub_1",
            "name": "evil\x1b[2Jname",
            "enabled": True,
            "filter": {"triggers": ["new_story", "growth"]},
            "delivery": {"webhook": {"url": "https://hooks.example.com/T0/SECRETPATH"}},
        },
        {"id": "sub_2", "name": "quiet", "enabled": False, "filter": {}, "delivery": {}},
    ]
    _stub_urllib(monkeypatch, _json(200, {"subscriptions": subs, "next_cursor": None}))
    monkeypatch.setenv("STORYWATCH_API_URL", BASE)
    table = CliRunner().invoke(main, ["subscriptions", "list"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ENABLED", "TRIGGERS", "WEBHOOK"]
    assert "new_story, growth" in lines[1]
    assert "hooks.example.com" in lines[1]
    assert "SECRETPATH" not in table.output  # the host only: a webhook path can be a secret
    assert "\x1b" not in table.output
    assert lines[2].split()[:3] == ["sub_2", "quiet", "no"]

    as_json = CliRunner().invoke(main, ["subscriptions", "list", "--json"])
    assert [json.loads(line) for line in as_json.output.splitlines()] == subs


def test_cli_error_shows_field_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps({"error": f"no subscription sub_x for {TOKEN}", "field": "id"}).encode()
    _stub_urllib(monkeypatch, _http_error(404, body))
    monkeypatch.setenv("STORYWATCH_API_TOKEN", TOKEN)
    result = CliRunner().invoke(main, ["subscriptions", "--url", BASE, "show", "sub_x"])
    assert result.exit_code == 1
    assert "storywatch: error: no subscription sub_x for *** (field id)" in result.output
    assert TOKEN not in result.output
