"""The connectors' HTTP client keeps no cookies: one client serves every hub client's deliveries."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors._base import HttpConnector
from connectors._http import ConnectorClient, make_client
from connectors._protocol import ConnectorConfig


async def test_a_cookie_a_target_sets_is_never_sent_back() -> None:
    seen: list[str | None] = []

    def target(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=tenant-a; Path=/"}, json={})

    async with ConnectorClient(base_url="http://erp.test", transport=httpx.MockTransport(target)) as client:
        first = await client.post("/journals", json={})
        assert first.headers["set-cookie"].startswith("session=")  # the target did set one
        await client.post("/journals", json={})
        assert seen == [None, None]
        assert len(client.cookies) == 0
        with pytest.raises(ValueError, match="no cookies"):
            client.cookies = {"session": "x"}  # type: ignore[assignment]


def test_make_client_builds_a_connector_client() -> None:
    client = make_client("http://erp.test", timeout_s=1, connect_timeout_s=1, transport="httpx")
    assert isinstance(client, ConnectorClient)


@given(
    st.sampled_from(["http://erp.test", "http://erp.test/", "http://h.test:8080/fhir", "http://h.test/fhir/"]),
    st.text(alphabet="abcXYZ019/-_.~ ?=&%#:é", max_size=24),
)
def test_a_connectors_prebuilt_url_is_the_one_httpx_would_build(base: str, path: str) -> None:
    client = httpx.AsyncClient(base_url=base)
    connector = HttpConnector(ConnectorConfig(base_url=base), client)
    try:
        expected = client.build_request("GET", path).url
    except httpx.InvalidURL:  # a path httpx refuses (":" first) must be refused the same way, not rebuilt
        with pytest.raises(httpx.InvalidURL):
            client.build_request("GET", connector._absolute(path))
        return
    for _ in range(2):  # built, then from the cache
        assert client.build_request("GET", connector._absolute(path)).url == expected
    if all((c.isalnum() and c.isascii()) or c in "/_.~-" for c in path):
        assert isinstance(connector._absolute(path), httpx.URL)  # plain paths take the fast way
