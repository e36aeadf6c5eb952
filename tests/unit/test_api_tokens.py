"""Bearer tokens: parsing STORYWATCH_API_TOKENS / _FILE, and checking a request's token."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from config.exceptions import StorywatchError
from config.settings import Settings
from streams.web.http import ApiTokens, HttpError, read_tokens


def _request(header: str | None = None, query: dict[str, str] | None = None) -> object:
    headers = {"Authorization": header} if header is not None else {}
    return SimpleNamespace(headers=headers, query=query or {})


def test_tokens_from_the_variable_and_the_file(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text("# owners of the API\ncarol:carol-secret-1\n dave:dave-secret-22 , \n")
    settings = Settings(api_tokens="alice:alice-secret-1,bob:bob-secret-22", api_tokens_file=file)
    assert read_tokens(settings.web) == {
        "alice-secret-1": "alice",
        "bob-secret-22": "bob",
        "carol-secret-1": "carol",
        "dave-secret-22": "dave",
    }


@pytest.mark.parametrize("spec", ["no-colon-here", ":orphan-token-1", "eve:short"])
def test_a_malformed_entry_is_refused_without_echoing_it(spec: str) -> None:
    with pytest.raises(StorywatchError, match="owner:token") as caught:
        read_tokens(Settings(api_tokens=spec).web)
    assert spec.rsplit(":", maxsplit=1)[-1] not in str(caught.value)


def test_an_unreadable_file_says_which_variable(tmp_path: Path) -> None:
    with pytest.raises(StorywatchError, match="STORYWATCH_API_TOKENS_FILE"):
        read_tokens(Settings(api_tokens_file=tmp_path / "missing").web)


def test_owner_of_a_request() -> None:
    tokens = ApiTokens(Settings(api_tokens="alice:alice-secret-1,bob:bob-secret-22").web)
    assert tokens.owner(_request("Bearer bob-secret-22")) == "bob"
    assert tokens.owner(_request("bearer  alice-secret-1 ")) == "alice"
    for bad in [None, "", "Basic YWxpY2U6eA==", "Bearer ", "Bearer alice-secret-2"]:
        with pytest.raises(HttpError) as caught:
            tokens.owner(_request(bad))
        assert caught.value.status == 401 and caught.value.field == "authorization"
    # ?access_token= only where the caller allows it (the SSE stream)
    with pytest.raises(HttpError):
        tokens.owner(_request(query={"access_token": "bob-secret-22"}))
    assert (
        tokens.owner(_request(query={"access_token": "bob-secret-22"}), query_token=True) == "bob"
    )


def test_no_tokens_configured_refuses_everyone_and_says_how_to_fix() -> None:
    with pytest.raises(HttpError, match="STORYWATCH_API_TOKENS") as caught:
        ApiTokens(Settings().web).owner(_request("Bearer anything-at-all"))
    assert caught.value.status == 401


def test_tokens_never_show_in_repr() -> None:
    tokens = ApiTokens(Settings(api_tokens="alice:alice-secret-1").web)
    assert "alice-secret-1" not in repr(tokens)
    assert "alice-secret-1" not in repr(Settings(api_tokens="alice:alice-secret-1"))
