"""An account keeps its facility, including one an older hub stored without the reservation."""

from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests import factories
from tests.conftest import KEY, TEST_POLICY


def test_an_account_stored_before_facility_reservations_keeps_its_facility(tmp_path: Path) -> None:
    """An older hub stored accounts without the facility reservation: such an account is held to the
    facility in its stored body, or its first update could still move it (two patients in the EHR)."""
    settings = Settings(
        data_dir=str(tmp_path), dispatcher_enabled=False, policy_file=str(TEST_POLICY), targets="ehr,erp"
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        client.headers["X-API-Key"] = KEY
        assert client.put("/v1/accounts/ACC-OLD-1", json=factories.account_details()).status_code == 202
        db: Any = client.app.state.hub.store._db
        db.execute("delete from resources where kind = 'account-facility'")  # as an older hub left it
        moved = client.put("/v1/accounts/ACC-OLD-1", json={**factories.account_details(), "facility": "EAST"})
        assert moved.status_code == 409, moved.text
        assert moved.json()["detail"].startswith("this account is held at another facility")
        assert client.put("/v1/accounts/ACC-OLD-1", json=factories.account_details()).status_code == 202
