"""The connectors' HTTP client keeps no cookies: one client serves every hub client's deliveries."""

from __future__ import annotations

import httpx
import pytest

from connectors._http import ConnectorClient, make_client


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
