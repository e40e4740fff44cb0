"""The contract every connector keeps, as a pytest suite that a connector's own tests subclass.

The dispatcher relies on more than the Protocol's signatures: that a connector is installed under
its entry point and is built as ``cls(config, client)``; that its config spec refuses unknown keys;
that ``check()`` reports a broken target instead of raising; that every operation delivers its
canonical payload and answers with the target's identifiers and HTTP status, never patient data;
that a redelivery under the same external reference creates nothing new in the target; that the
reference and the trace context reach the target; and that each kind of failure lands on the right
branch of the error tree (retry, reject, misconfigured) with a message of our own. This suite checks
all of it against a real target over HTTP::

    class TestMyPayer(ConnectorContract):
        connector_class = MyPayerConnector
        entry_point = "my-payer"  # its name in the billing_hub.connectors group

        @pytest.fixture(scope="class")
        @classmethod
        def target_url(cls) -> Iterator[str]:
            ...  # start the target (a stub built on the stub kit) and yield its base URL

        @pytest.fixture
        def samples(self) -> dict[str, Any]:
            return {"post_invoice": Invoice(...)}  # a canonical payload per operation, new per test

Failures are injected through the stub kit's ``/_control/faults`` routes (``connectors._stubkit``),
which every stub server here carries, and what reached the target is read from its request journal
(``/_control/requests``). Each test runs its own event loop (``asyncio.run``), so the suite needs no
async test plugin and runs the same under any pytest-asyncio mode.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import httpx
import msgspec
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from canonical import phi_values
from connectors._errors import ConnectorError, MisconfiguredError, RejectedError, RetriableError
from connectors._http import make_client
from connectors._protocol import Connector, ConnectorConfig, DeliveryResult
from connectors._registry import load_connector_class

__all__ = ["ConnectorContract"]

_CONTROL = "/_control"
_TIMEOUT_S = 5.0
_SHORT_TIMEOUT_S = 0.3
# PHI values shorter than this (a sex "F", a state "IL") are not looked for inside returned text:
# they occur in ordinary codes by chance. The same threshold as the log scrubbing filter's.
_PHI_MIN_LENGTH = 4
_TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
_SPAN_ID = 0x00F067AA0BA902B7

_RETRIABLE_FAULTS: dict[str, dict[str, Any]] = {
    "503": {"error_status": 503},
    "429": {"error_status": 429},
    "502": {"error_status": 502},
    "dropped connection": {"drop_rate": 1.0},
}
_REJECTING_FAULTS: dict[str, dict[str, Any]] = {"400": {"error_status": 400}, "422": {"error_status": 422}}
_MISCONFIGURED_FAULTS: dict[str, dict[str, Any]] = {"401": {"error_status": 401}, "404": {"error_status": 404}}


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ConnectorContract:
    """Subclass as ``Test...``; set ``connector_class`` and ``entry_point``; provide the
    ``target_url`` and ``samples`` fixtures. Override ``make_config`` when the config spec has
    required fields besides ``base_url``."""

    connector_class: ClassVar[type[Any]]
    entry_point: ClassVar[str]

    def make_config(self, base_url: str, timeout_s: float) -> ConnectorConfig:
        config: ConnectorConfig = self.connector_class.config_type(base_url=base_url, timeout_s=timeout_s)
        return config

    @asynccontextmanager
    async def connector(self, base_url: str, timeout_s: float = _TIMEOUT_S) -> AsyncIterator[Connector]:
        """The connector as the hub builds it: its config, then ``cls(config, client)``."""
        config = self.make_config(base_url, timeout_s)
        client = make_client(config.base_url, timeout_s=config.timeout_s, connect_timeout_s=config.connect_timeout_s)
        built: Connector = self.connector_class(config, client)
        try:
            yield built
        finally:
            await built.aclose()

    # --- the class itself -------------------------------------------------------------------------

    def test_is_a_connector_installed_under_its_entry_point(self) -> None:
        assert load_connector_class(self.entry_point) is self.connector_class
        assert isinstance(self.connector_class.kind, str)
        assert self.connector_class.kind
        assert issubclass(self.connector_class.config_type, ConnectorConfig)

    def test_config_spec_refuses_unknown_keys(self) -> None:
        with pytest.raises(msgspec.ValidationError, match="unknown field"):
            msgspec.convert({"base_url": "http://127.0.0.1:1", "surprise": True}, self.connector_class.config_type)

    def test_every_operation_has_a_sample_of_its_payload_type(self, target_url: str, samples: dict[str, Any]) -> None:
        async def operations() -> dict[str, type[Any]]:
            async with self.connector(target_url) as connector:
                assert isinstance(connector, Connector)
                return {name: op.payload_type for name, op in connector.operations.items()}

        offered = asyncio.run(operations())
        assert offered, "a connector offers at least one operation"
        assert set(samples) == set(offered), "the samples fixture must give one payload per operation"
        for name, payload_type in offered.items():
            assert isinstance(samples[name], payload_type), f"sample for {name} is not a {payload_type.__name__}"

    # --- health -----------------------------------------------------------------------------------

    def test_check_reports_a_healthy_target(self, target_url: str) -> None:
        async def check() -> Any:
            async with self.connector(target_url) as connector:
                return await connector.check()

        health = asyncio.run(check())
        assert health.ok, health.detail
        assert health.latency_ms is not None

    def test_check_reports_an_unreachable_target_without_raising(self) -> None:
        async def check() -> Any:
            async with self.connector(f"http://127.0.0.1:{_closed_port()}", timeout_s=1.0) as connector:
                return await connector.check()

        health = asyncio.run(check())
        assert not health.ok
        assert health.detail

    # --- delivery ---------------------------------------------------------------------------------

    def test_delivers_every_operation_with_the_targets_status_and_no_phi(
        self, target_url: str, samples: dict[str, Any]
    ) -> None:
        for name, sample in samples.items():
            result = asyncio.run(self._deliver(target_url, name, sample, f"contract-{name}-1"))
            assert isinstance(result, DeliveryResult)
            assert result.status is not None
            assert 200 <= result.status < 300, f"{name}: status {result.status}"
            assert result.reference, f"{name}: the target's identifier for what it stored"
            assert all(isinstance(v, str) for v in result.details.values())
            _assert_no_phi(sample, [result.reference, *result.details.values()], f"{name}'s result")

    def test_redelivery_under_the_same_reference_creates_nothing_new(
        self, target_url: str, samples: dict[str, Any]
    ) -> None:
        for name, sample in samples.items():
            reference = f"contract-{name}-redelivered"
            first = asyncio.run(self._deliver(target_url, name, sample, reference))
            again = asyncio.run(self._deliver(target_url, name, sample, reference))
            assert again.reference == first.reference, f"{name}: a redelivery made a second object"

    def test_external_reference_and_trace_context_reach_the_target(
        self, target_url: str, samples: dict[str, Any]
    ) -> None:
        for name, sample in samples.items():
            reference = f"contract-{name}-traced"
            _forget_requests(target_url)
            asyncio.run(self._traced_delivery(target_url, name, sample, reference))
            received = _requests(target_url)
            assert received, f"{name}: nothing reached the target"
            for record in received:
                assert record["idempotency"] == reference, f"{name}: {record['method']} {record['path']}"
                assert f"{_TRACE_ID:032x}" in (record["traceparent"] or ""), f"{name}: trace context lost"

    # --- failures ---------------------------------------------------------------------------------

    @pytest.mark.parametrize("fault", list(_RETRIABLE_FAULTS))
    def test_transient_failures_are_retriable(self, target_url: str, samples: dict[str, Any], fault: str) -> None:
        for name, sample in samples.items():
            error = self._failed(target_url, name, sample, _RETRIABLE_FAULTS[fault])
            assert isinstance(error, RetriableError), f"{name} under {fault}: {type(error).__name__}"
            if fault == "429":
                assert error.retry_after == 1.0, "Retry-After is honoured"

    def test_a_target_slower_than_the_timeout_is_retriable(self, target_url: str, samples: dict[str, Any]) -> None:
        for name, sample in samples.items():
            faults = {"latency_ms": int(_SHORT_TIMEOUT_S * 1000) + 700, "remaining": 1}
            error = self._failed(target_url, name, sample, faults, timeout_s=_SHORT_TIMEOUT_S)
            assert isinstance(error, RetriableError), f"{name}: {type(error).__name__}"
            assert "timed out" in error.message

    @pytest.mark.parametrize("fault", list(_REJECTING_FAULTS))
    def test_refusals_are_rejected_not_retried(self, target_url: str, samples: dict[str, Any], fault: str) -> None:
        for name, sample in samples.items():
            error = self._failed(target_url, name, sample, _REJECTING_FAULTS[fault])
            assert isinstance(error, RejectedError), f"{name} under {fault}: {type(error).__name__}"
            assert error.status == int(fault)

    @pytest.mark.parametrize("fault", list(_MISCONFIGURED_FAULTS))
    def test_our_own_mistakes_are_misconfigured(self, target_url: str, samples: dict[str, Any], fault: str) -> None:
        for name, sample in samples.items():
            error = self._failed(target_url, name, sample, _MISCONFIGURED_FAULTS[fault])
            assert isinstance(error, MisconfiguredError), f"{name} under {fault}: {type(error).__name__}"

    # --- lifecycle --------------------------------------------------------------------------------

    def test_aclose_releases_the_client_and_may_be_called_twice(self, target_url: str) -> None:
        async def closed() -> bool:
            config = self.make_config(target_url, _TIMEOUT_S)
            client = make_client(config.base_url, timeout_s=_TIMEOUT_S, connect_timeout_s=_TIMEOUT_S)
            connector: Connector = self.connector_class(config, client)
            await connector.check()
            await connector.aclose()
            await connector.aclose()
            return client.is_closed

        assert asyncio.run(closed())

    # --- helpers ----------------------------------------------------------------------------------

    async def _deliver(
        self, base_url: str, name: str, sample: Any, reference: str, timeout_s: float = _TIMEOUT_S
    ) -> DeliveryResult:
        async with self.connector(base_url, timeout_s) as connector:
            return await connector.operations[name].handler(sample, reference)

    async def _traced_delivery(self, base_url: str, name: str, sample: Any, reference: str) -> DeliveryResult:
        parent = SpanContext(_TRACE_ID, _SPAN_ID, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
        try:
            return await self._deliver(base_url, name, sample, reference)
        finally:
            otel_context.detach(token)

    def _failed(
        self, base_url: str, name: str, sample: Any, faults: dict[str, Any], timeout_s: float = _TIMEOUT_S
    ) -> ConnectorError:
        """The error a delivery of ``sample`` raises while the target misbehaves as ``faults`` say;
        its message must carry none of the sample's PHI."""
        _set_faults(base_url, faults)
        try:
            asyncio.run(self._deliver(base_url, name, sample, f"contract-{name}-failing", timeout_s))
        except ConnectorError as error:
            _assert_no_phi(sample, [error.message, str(error)], f"{name}'s error")
            return error
        finally:
            _clear_faults(base_url)
        pytest.fail(f"{name} succeeded although the target answered with {faults}")


def _assert_no_phi(sample: Any, texts: list[str], where: str) -> None:
    for value in phi_values(sample, type(sample)):
        if len(value) < _PHI_MIN_LENGTH:
            continue
        leaked = [text for text in texts if value in text]
        assert not leaked, f"{where} carries a PHI value of the payload"


def _set_faults(base_url: str, faults: dict[str, Any]) -> None:
    httpx.put(f"{base_url}{_CONTROL}/faults", json=faults, timeout=_TIMEOUT_S).raise_for_status()


def _clear_faults(base_url: str) -> None:
    httpx.delete(f"{base_url}{_CONTROL}/faults", timeout=_TIMEOUT_S).raise_for_status()


def _forget_requests(base_url: str) -> None:
    httpx.delete(f"{base_url}{_CONTROL}/requests", timeout=_TIMEOUT_S).raise_for_status()


def _requests(base_url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base_url}{_CONTROL}/requests", timeout=_TIMEOUT_S)
    answer.raise_for_status()
    records: list[dict[str, Any]] = answer.json()
    return records
