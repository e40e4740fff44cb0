"""ERP (general ledger and accounts receivable) connector and its stub server."""

from connectors.erp._connector import LedgerErpConfig, LedgerErpConnector

__all__ = ["LedgerErpConfig", "LedgerErpConnector"]
