"""The connectors' HTTP client keeps no cookies: one client serves every hub client's deliveries."""

from __future__ import annotations

import socket

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors._base import HttpConnector
from connectors._errors import RetriableError
from connectors._http import ConnectorClient, _RefusalsAsConnectErrors, make_client
from connectors._outcomes import error_for_transport
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


# No deadline: it builds an httpx client per example, whose first one took 247 ms on a loaded machine
# (hypothesis' default deadline is 200 ms), a flaky failure that says nothing about the code.
@settings(deadline=None)
@example(base="http://erp.test", path="//0")  # a network-path reference: found by hypothesis in CI
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
    if all((c.isalnum() and c.isascii()) or c in "/_.~-" for c in path) and not path.startswith("//"):
        assert isinstance(connector._absolute(path), httpx.URL)  # plain paths take the fast way


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_a_refused_connect_is_reported_as_refused_not_as_a_timeout(transport: str) -> None:
    """httpx-aiohttp raises ConnectTimeout for a refused connect; the hub must still say "refused"."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}", timeout_s=5, connect_timeout_s=5, transport=transport)
    async with client:
        with pytest.raises(httpx.TransportError) as raised:
            await client.post("/journals", json={})
    error = error_for_transport("erp", raised.value)
    assert isinstance(error, RetriableError)
    assert str(error) == "erp: connection refused or unreachable"


async def test_a_real_connect_timeout_stays_a_timeout() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow") from TimeoutError()

    async with ConnectorClient(transport=_RefusalsAsConnectErrors(httpx.MockTransport(slow))) as client:
        with pytest.raises(httpx.ConnectTimeout) as raised:
            await client.get("http://erp.test/journals")
    assert str(error_for_transport("erp", raised.value)) == "erp: timed out"
