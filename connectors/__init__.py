"""Connectors: the contract, the registry, shared HTTP resilience, and one package per system kind."""

from connectors._base import HttpConnector, decode_body
from connectors._errors import ConnectorError, MisconfiguredError, RejectedError, RetriableError
from connectors._http import TransportKind, make_client
from connectors._outcomes import Outcome, error_for_response, error_for_transport, outcome_for_status
from connectors._protocol import Connector, ConnectorConfig, DeliveryResult, Health, Operation
from connectors._registry import ENTRY_POINT_GROUP, available_connectors, load_connector_class

__all__ = [
    "ENTRY_POINT_GROUP",
    "Connector",
    "ConnectorConfig",
    "ConnectorError",
    "DeliveryResult",
    "Health",
    "HttpConnector",
    "MisconfiguredError",
    "Operation",
    "Outcome",
    "RejectedError",
    "RetriableError",
    "TransportKind",
    "available_connectors",
    "decode_body",
    "error_for_response",
    "error_for_transport",
    "load_connector_class",
    "make_client",
    "outcome_for_status",
]
