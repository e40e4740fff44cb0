"""Two hub processes on one Redis: one outbox, one rate limit, one idempotency record.

Both instances run ``billing-hub serve`` with ``BILLING_HUB_STATE_BACKEND=redis`` and the same key
prefix (unique to the test, deleted afterwards) in front of one ERP stub. What one instance accepts
the other may deliver; each entry must reach the ERP exactly once, and the SIGKILL of one instance
must lose nothing: its leases run out and the survivor delivers what it held.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis

from tests import factories
from tests.conftest import BETA_KEY, TEST_POLICY
from tests.integration._harness import (
    REDIS_URL,
    Proc,
    cleanup,
    clear_faults,
    erp_holding,
    erp_references,
    erp_requests,
    hub_env,
    poll,
    redis_prefix,
    set_faults,
    wait_completed,
)

pytestmark = [pytest.mark.integration, pytest.mark.redis]

SEED = 4242
LEASE_S = 3.0


def _pair(tmp_path: Path, erp: Proc, prefix: str, **overrides: str) -> tuple[Proc, Proc]:
    """Two hub processes sharing the Redis state under ``prefix``; started together."""
    hubs = []
    for name in ("hub-a", "hub-b"):
        env = hub_env(
            erp.url,
            tmp_path / name,
            BILLING_HUB_STATE_BACKEND="redis",
            BILLING_HUB_REDIS_URL=REDIS_URL,
            BILLING_HUB_REDIS_PREFIX=prefix,
            BILLING_HUB_LEASE_S=str(LEASE_S),
            # Every delivery of the run stays in the breaker's window: its call count is how many
            # deliveries this instance made.
            BILLING_HUB_BREAKER_WINDOW_S="600",
            BILLING_HUB_BREAKER_MIN_CALLS="1000",
            **overrides,
        )
        hubs.append(Proc.hub(name, tmp_path, env))
    for hub in hubs:
        hub.launch()
    for hub in hubs:
        hub.wait_ready()
    return hubs[0], hubs[1]


def _post(api: httpx.Client, reference: str) -> httpx.Response:
    return api.post("/v1/journals", json=factories.journal(reference))


def _calls(hub: Proc) -> int:
    """Deliveries this instance made (its ERP breaker's call count over the run)."""
    with hub.client() as api:
        calls: int = api.get("/v1/admin/connectors").json()["erp"]["calls"]
        return calls


def _wait_for_erp(erp: Proc, count: int, timeout_s: float = 60) -> list[str]:
    return poll(f"the ERP to hold {count} journals", erp_holding(erp, count), timeout_s=timeout_s, every_s=0.2)


@pytest.fixture
def prefix() -> Iterator[str]:
    with redis_prefix() as value:
        yield value


@pytest.fixture
def store_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
    yield client
    client.close()


def test_two_instances_share_the_outbox_and_deliver_each_entry_once(tmp_path: Path, prefix: str) -> None:
    count = 300
    erp = Proc.erp(tmp_path).start()
    with ExitStack() as stack:
        stack.enter_context(cleanup(erp))
        hub_a, hub_b = _pair(tmp_path, erp, prefix)
        stack.enter_context(cleanup(hub_a, hub_b))
        api_a, api_b = stack.enter_context(hub_a.client()), stack.enter_context(hub_b.client())
        references = [f"pair-{i:04d}" for i in range(count)]
        transactions = {}
        for i, reference in enumerate(references):
            response = _post(api_a if i % 2 == 0 else api_b, reference)
            assert response.status_code == 202, response.text
            transactions[reference] = response.json()["id"]

        posted = Counter(_wait_for_erp(erp, count))
        assert posted == Counter(references)  # every journal, each exactly once
        requests = [r for r in erp_requests(erp) if r["path"] == "/erp/journals" and r["method"] == "POST"]
        assert Counter(r["status"] for r in requests) == Counter({201: count})  # not even a duplicate post
        # Either instance reads every transaction, whichever accepted or delivered it.
        wait_completed(api_b, list(transactions.values()))
        by_a, by_b = _calls(hub_a), _calls(hub_b)
        assert by_a > 0, (by_a, by_b)  # both instances delivered
        assert by_b > 0, (by_a, by_b)
        assert by_a + by_b == count  # and no entry was delivered by both
        print(f"\ntwo instances: {count} journals, delivered {by_a} by A and {by_b} by B, each posted once")


def _leases(client: redis.Redis, prefix: str) -> dict[str, dict[str, str]]:
    """Outbox entries in flight right now: id -> lease_owner, lease_until, lease_token, transaction_id."""
    ids = cast("list[str]", client.zrange(f"{prefix}store:inflight", 0, -1))
    leases = {}
    for entry_id in ids:
        names = ["lease_owner", "lease_until", "lease_token", "transaction_id"]
        fields = cast("list[str | None]", client.hmget(f"{prefix}store:outbox:{entry_id}", names))
        if all(value is not None for value in fields):
            leases[entry_id] = dict(
                zip(("owner", "until", "token", "transaction_id"), cast("list[str]", fields), strict=True)
            )
    return leases


def test_sigkill_of_one_instance_loses_nothing(tmp_path: Path, prefix: str, store_redis: redis.Redis) -> None:
    rng = random.Random(SEED)
    first, second = 120, 80
    erp = Proc.erp(tmp_path).start()
    with ExitStack() as stack:
        stack.enter_context(cleanup(erp))
        # Slow deliveries through few slots, so each instance holds leases when the kill comes.
        hub_a, hub_b = _pair(tmp_path, erp, prefix, BILLING_HUB_DISPATCH_CONCURRENCY="8")
        stack.enter_context(cleanup(hub_a, hub_b))
        api_a, api_b = stack.enter_context(hub_a.client()), stack.enter_context(hub_b.client())
        set_faults(erp, latency_ms=300, path_prefix="/erp/journals", seed=rng.randrange(2**31))
        references = [f"kill-{i:04d}" for i in range(first + second)]
        transactions: dict[str, str] = {}
        for i, reference in enumerate(references[:first]):
            transactions[reference] = _post(api_a if i % 2 == 0 else api_b, reference).json()["id"]

        poll(
            "both instances holding leases",
            lambda: len({lease["owner"] for lease in _leases(store_redis, prefix).values()}) == 2,
            timeout_s=10,
            every_s=0.02,
        )
        hub_a.kill()
        held = _leases(store_redis, prefix)  # A is dead: its leases stay as they are until they run out
        for reference in references[first:]:  # the load goes on, on the survivor
            transactions[reference] = _post(api_b, reference).json()["id"]

        # B's owner id: whoever claims anything after the kill (fencing tokens only grow).
        newest = max(int(lease["token"]) for lease in held.values())
        b_owner = poll(
            "a claim by the survivor",
            lambda: next(
                (lease["owner"] for lease in _leases(store_redis, prefix).values() if int(lease["token"]) > newest),
                None,
            ),
            timeout_s=10,
            every_s=0.02,
        )
        orphaned = {entry: lease for entry, lease in held.items() if lease["owner"] != b_owner}
        assert orphaned, "the killed instance held no lease at the kill"

        clear_faults(erp)
        posted = Counter(_wait_for_erp(erp, first + second, timeout_s=60))
        assert posted == Counter(references)  # nothing lost, nothing posted twice
        wait_completed(api_b, list(transactions.values()))
        # What A held was delivered by B, and only after A's lease on it had run out.
        for entry_id, lease in orphaned.items():
            transaction = api_b.get(f"/v1/transactions/{lease['transaction_id']}").json()
            (delivery,) = transaction["deliveries"]
            assert delivery["state"] == "done"
            success = next(a for a in delivery["history"] if a["outcome"] == "success")
            assert datetime.fromisoformat(success["started_at"]).timestamp() >= float(lease["until"]), entry_id
        duplicates = sum(1 for r in erp_requests(erp) if r["method"] == "POST" and r["status"] == 200)
        print(
            f"\nkill one of two: A held {len(orphaned)} leases at the SIGKILL; B delivered them once the leases "
            f"ran out ({LEASE_S} s); {first + second} journals each posted once; redeliveries the ERP answered "
            f"as duplicates: {duplicates}"
        )


def _tight_policy(tmp_path: Path, limit: int) -> Path:
    """The test policy with the ``writes`` quota cut to ``limit`` per hour."""
    text, replaced = re.subn(
        r"(\[rate_limits\.writes\]\nlimit = )\d+(\nwindow_s = )[\d.]+",
        rf"\g<1>{limit}\g<2>3600",
        TEST_POLICY.read_text(),
    )
    assert replaced == 1, "tests/fixtures/policy.toml no longer has a [rate_limits.writes] limit/window_s"
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


@pytest.fixture
def tight_pair(tmp_path: Path, prefix: str) -> Iterator[tuple[Proc, Proc]]:
    erp = Proc.erp(tmp_path).start()
    with cleanup(erp):
        policy = _tight_policy(tmp_path, 10)
        hub_a, hub_b = _pair(tmp_path, erp, prefix, BILLING_HUB_POLICY_FILE=str(policy))
        with cleanup(hub_a, hub_b):
            yield hub_a, hub_b


def test_one_rate_limit_across_instances(tight_pair: tuple[Proc, Proc]) -> None:
    hubs = tight_pair
    with hubs[0].client() as api_a, hubs[1].client() as api_b:
        answers = [(i % 2, _post((api_a, api_b)[i % 2], f"limit-{i:03d}")) for i in range(30)]
    statuses = Counter(response.status_code for _, response in answers)
    assert statuses == Counter({202: 10, 429: 20}), statuses
    # Alternating, each instance accepted 5: neither had a quota of its own.
    assert Counter(hub for hub, r in answers if r.status_code == 202) == Counter({0: 5, 1: 5})
    for _, response in answers:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["ratelimit"].startswith('"writes";r=0')
    print(f"\none rate limit: 30 journals over two instances -> {dict(statuses)}")


def test_keyed_posts_are_limited_with_their_claim_as_unkeyed_ones(
    tight_pair: tuple[Proc, Proc], prefix: str, store_redis: redis.Redis
) -> None:
    """A POST with an Idempotency-Key is limited in the round trip that claims its key: the same one
    limit across instances, a refused request claims nothing, and a limited client hears 429 even
    for a body the chain refuses before claiming (a member named twice: 400 otherwise)."""
    hubs = tight_pair
    with hubs[0].client() as api_a, hubs[1].client() as api_b:
        apis = (api_a, api_b)
        answers = [
            apis[i % 2].post(
                "/v1/journals", json=factories.journal(f"keyed-{i:03d}"), headers={"Idempotency-Key": f"k{i}"}
            )
            for i in range(30)
        ]
        broken = api_a.post(
            "/v1/journals",
            content=b'{"ledger": "A", "ledger": "B"}',
            headers={"Idempotency-Key": "k-broken", "Content-Type": "application/json"},
        )
    statuses = Counter(response.status_code for response in answers)
    assert statuses == Counter({202: 10, 429: 20}), statuses
    for response in answers:
        assert response.headers["ratelimit"].startswith('"writes";r=')
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
    assert broken.status_code == 429, broken.text
    claimed = list(store_redis.scan_iter(match=f"{prefix}idem:*"))
    assert len(claimed) == 10, claimed  # one record per accepted journal, none for the refused


def test_one_idempotency_record_across_instances(tight_pair: tuple[Proc, Proc]) -> None:
    hub_a, hub_b = tight_pair
    key = f"idem-{random.Random(SEED).getrandbits(64):016x}"
    body = factories.journal("idem-across-1")
    with hub_a.client(BETA_KEY) as api_a, hub_b.client(BETA_KEY) as api_b:
        first = api_a.post("/v1/journals", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 202, first.text
        assert "idempotent-replayed" not in first.headers
        again = api_b.post("/v1/journals", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 202, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["location"] == first.headers["location"]
        other: dict[str, Any] = factories.journal("idem-across-2")
        mismatch = api_b.post("/v1/journals", json=other, headers={"Idempotency-Key": key})
        assert mismatch.status_code == 422, mismatch.text
        assert mismatch.headers["content-type"].startswith("application/problem+json")


def test_prefer_wait_answers_when_the_other_instance_delivered(tmp_path: Path, prefix: str) -> None:
    """A ``Prefer: wait`` request waits for its own dispatcher to say the work is done; when the
    other instance delivered it, nothing here said so, and the answer came at the end of the wait."""
    erp = Proc.erp(tmp_path).start()
    shared = {
        "BILLING_HUB_STATE_BACKEND": "redis",
        "BILLING_HUB_REDIS_URL": REDIS_URL,
        "BILLING_HUB_REDIS_PREFIX": prefix,
        "BILLING_HUB_CONNECTOR_TIMEOUT_S": "20",
        "BILLING_HUB_LEASE_S": "30",
        "BILLING_HUB_SHUTDOWN_GRACE_S": "1",
    }
    # A delivers one thing at a time, and is kept busy by a slow ERP customer upsert.
    hub_a = Proc.hub("hub-a", tmp_path, hub_env(erp.url, tmp_path / "hub-a", BILLING_HUB_DISPATCH_CONCURRENCY="1",
                                                 **shared))  # fmt: skip
    hub_b = Proc.hub("hub-b", tmp_path, hub_env(erp.url, tmp_path / "hub-b", **shared))
    with ExitStack() as stack:
        stack.enter_context(cleanup(erp, hub_a, hub_b))
        hub_a.start()
        api_a = stack.enter_context(hub_a.client(timeout_s=30))
        set_faults(erp, latency_ms=15_000, path_prefix="/erp/customers/")
        assert api_a.put("/v1/accounts/ACC-BUSY-1", json=factories.account_details()).status_code == 202
        poll(
            "hub A's slow customer upsert to reach the ERP",
            lambda: any(r["path"] == "/erp/customers/ACC-BUSY-1" for r in erp_requests(erp)),
            timeout_s=10,
        )
        hub_b.start()  # only now: the upsert is A's, and B has room to deliver
        started = time.monotonic()
        waited = api_a.post("/v1/journals", json=factories.journal("wait-across-1"), headers={"Prefer": "wait=8"})
        elapsed = time.monotonic() - started
        assert (waited.status_code, waited.json()["state"]) == (200, "completed"), waited.text
        assert erp_references(erp) == ["wait-across-1"]  # B delivered it: A had no free slot
        assert elapsed < 4, f"answered after {elapsed:.1f} s of an 8 s wait"
