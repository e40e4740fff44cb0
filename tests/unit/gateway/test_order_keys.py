"""Which deliveries keep an order: those of a resource a later request can write again."""

from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests import factories
from tests.conftest import KEY, TEST_POLICY


def test_an_account_keeps_an_order_per_target_and_a_journal_none(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY), targets="ehr,erp"
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        assert client.put("/v1/accounts/ACC-ORDER-1", json=factories.account_details()).status_code == 202
        assert client.post("/v1/journals", json=factories.journal()).status_code == 202
        db: Any = client.app.state.hub.store._db
        rows = db.execute("select t.kind, o.target, o.order_key from outbox o join transactions t "
                          "on t.id = o.transaction_id order by t.kind, o.target").fetchall()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        ("account.sync", "ehr", "ehr:account:ACC-ORDER-1"),
        ("account.sync", "erp", "erp:account:ACC-ORDER-1"),
        ("journal.post", "erp", None),  # its id was minted for this request: nothing can come after it
    ]
