"""Connectors from outside this repository, installed the way a package would be: modules and a
``.dist-info`` with an entry point in ``billing_hub.connectors``, in a directory put on the path.
No pip and no edit to the hub: what an integration engineer's package looks like to the hub."""

from __future__ import annotations

from pathlib import Path

ACME_ERP = "acme-erp"

_MODULE = '''
from typing import Any, ClassVar

import msgspec

from connectors import DeliveryResult
from connectors.erp import LedgerErpConnector


class AcmeErpConnector(LedgerErpConnector):
    """Another ERP: the same ledger API, its own name, and it says so in every journal's details."""

    kind: ClassVar[str] = "acme-erp"

    async def post_journal(self, entry: Any, external_ref: str) -> DeliveryResult:
        posted = await super().post_journal(entry, external_ref)
        return msgspec.structs.replace(posted, details={**posted.details, "via": "acme-erp"})
'''


BROKEN_ERP = "broken-erp"

_BROKEN = """
from typing import Any, ClassVar

from connectors import DeliveryResult
from connectors.erp import LedgerErpConnector


class BrokenErpConnector(LedgerErpConnector):
    \"\"\"A connector with a bug: every journal raises something outside the error tree.\"\"\"

    kind: ClassVar[str] = "broken-erp"

    async def post_journal(self, entry: Any, external_ref: str) -> DeliveryResult:
        raise RuntimeError("a bug in the connector, not an answer from the target")
"""


def install_acme_erp(directory: Path) -> Path:
    """Write the package into ``directory`` (to go on ``sys.path`` / ``PYTHONPATH``) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "acme_erp.py").write_text(_MODULE)
    info = directory / "acme_erp-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-erp\nVersion: 1.0\n")
    (directory / "broken_erp.py").write_text(_BROKEN)
    (info / "entry_points.txt").write_text(
        f"[billing_hub.connectors]\n{ACME_ERP} = acme_erp:AcmeErpConnector\n"
        f"{BROKEN_ERP} = broken_erp:BrokenErpConnector\n"
    )
    return directory
