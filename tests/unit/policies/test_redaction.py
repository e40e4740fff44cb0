"""PHI redaction follows the marks on the canonical types: every marked path goes, nothing else does."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical import PHI, decode, phi_paths, to_builtins
from canonical._codes import is_text
from canonical.v1 import Claim, PatientAccount, Remittance
from policies.redaction import REDACTED, PhiHasher, PhiScrubbingFilter, phi_hash, phi_values, redact
from tests import factories

# --- payloads with every PHI field filled -------------------------------------------------------

ADDRESS = {"line1": "77 Sentinel Rd", "line2": "Apt 9", "city": "Quahog", "state": "RI", "postal_code": "02860"}


def claim_payload() -> dict[str, Any]:
    payload = factories.claim(claim_id="PCN000777", member_id="MBR-SENTINEL-1", family="Sentinelson")
    payload["subscriber"]["relationship_to_patient"] = "child"
    payload["subscriber"]["name"]["middle"] = "Quill"
    payload["patient"] = {
        "name": {"family": "Kidwell", "given": "Tamsin", "suffix": "Jr"},
        "birth_date": "2015-06-30",
        "sex": "M",
        "address": ADDRESS,
    }
    payload["diagnoses"] = ["J02.9", "R50.9", "E11.65"]
    return payload


def account_payload() -> dict[str, Any]:
    payload = factories.account_details(family="Sentinelson", given="Orla", member_id="MBR-SENTINEL-2")
    payload["account_number"] = "ACC-77"
    payload["guarantor"]["address"] = ADDRESS
    payload["coverages"].append(payload["coverages"][0] | {"member_id": "MBR-SENTINEL-3", "priority": "secondary"})
    return payload


def remittance_payload() -> dict[str, Any]:
    payload = factories.remittance(claim_ids=("PCN000101", "PCN000102"), trace_number="TRC-1")
    payload["claims"][0]["patient_name"] = {"family": "Sentinelson", "given": "Ivo"}
    payload["claims"][1]["patient_name"] = {"family": "Marchbanks", "given": "Ula", "middle": "Q"}
    return payload


CASES = [(Claim, claim_payload), (PatientAccount, account_payload), (Remittance, remittance_payload)]
CASE_IDS = ["claim", "account", "remittance"]


def _struct(type_: type[Any], payload: dict[str, Any]) -> Any:
    return decode(msgspec.json.encode(payload), type_)


def _segments(path: str) -> list[str]:
    return [s for s in re.split(r"\.|(\[\])", path) if s]


def _at(value: Any, segments: list[str]) -> Iterator[Any]:
    """Every value found at a ``phi_paths`` path (an independent walker, not the module's)."""
    if not segments:
        yield value
        return
    head, rest = segments[0], segments[1:]
    if head == "[]" and isinstance(value, list):
        for item in value:
            yield from _at(item, rest)
    elif isinstance(value, dict) and value.get(head) is not None:
        yield from _at(value[head], rest)


def _blank(value: Any, segments: list[str]) -> Any:
    """``value`` with whatever sits at the path replaced by REDACTED: the expected output, built by hand."""
    if not segments:
        return REDACTED
    head, rest = segments[0], segments[1:]
    if head == "[]" and isinstance(value, list):
        return [_blank(item, rest) for item in value]
    if isinstance(value, dict) and value.get(head) is not None:
        return value | {head: _blank(value[head], rest)}
    return value


# --- redact ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("type_", "payload"), CASES, ids=CASE_IDS)
def test_every_phi_path_is_redacted(type_: Any, payload: Any) -> None:
    out = redact(_struct(type_, payload()), type_)
    for path in phi_paths(type_):
        found = list(_at(out, _segments(path)))
        assert found, f"the test payload leaves {path} empty"
        assert found == [REDACTED] * len(found), path


@pytest.mark.parametrize(("type_", "payload"), CASES, ids=CASE_IDS)
def test_everything_else_survives_unchanged(type_: Any, payload: Any) -> None:
    original = to_builtins(_struct(type_, payload()))
    expected = original
    for path in phi_paths(type_):
        expected = _blank(expected, _segments(path))
    assert redact(_struct(type_, payload()), type_) == expected


@pytest.mark.parametrize(("type_", "payload"), CASES, ids=CASE_IDS)
def test_no_phi_value_survives_encoding(type_: Any, payload: Any) -> None:
    obj = _struct(type_, payload())
    encoded = msgspec.json.encode(redact(obj, type_)).decode()
    sentinels = {v for v in phi_values(obj, type_) if "entinel" in v or v in {"Kidwell", "Tamsin", "Marchbanks"}}
    assert sentinels
    for value in sentinels:
        assert value not in encoded


@pytest.mark.parametrize(("type_", "payload"), CASES, ids=CASE_IDS)
def test_a_builtins_dict_is_redacted_too_and_left_untouched(type_: Any, payload: Any) -> None:
    given = payload()
    before = msgspec.json.encode(given)
    expected = given
    for path in phi_paths(type_):
        expected = _blank(expected, _segments(path))
    assert redact(given, type_) == expected
    assert msgspec.json.encode(given) == before


def test_non_phi_spot_checks() -> None:
    out = redact(_struct(Claim, claim_payload()), Claim)
    assert out["billing_provider"]["npi"] == factories.NPI
    assert out["billing_provider"]["address"]["line1"] == "1 Main St"  # a provider address is not PHI
    assert out["total_charge"] == "125.50"
    assert [line["procedure"] for line in out["service_lines"]] == ["99213", "87880"]
    assert out["subscriber"]["sex"] == "F"
    assert out["payer"]["payer_id"] == "87726"


def test_lists_of_phi_items_keep_their_length() -> None:
    out = redact(_struct(Claim, claim_payload()), Claim)
    assert out["diagnoses"] == [REDACTED] * 3


def test_nested_list_items_are_redacted_one_by_one() -> None:
    out = redact(_struct(Remittance, remittance_payload()), Remittance)
    assert [c["patient_name"] for c in out["claims"]] == [REDACTED, REDACTED]
    assert [c["claim_id"] for c in out["claims"]] == ["PCN000101", "PCN000102"]
    out = redact(_struct(PatientAccount, account_payload()), PatientAccount)
    assert [c["member_id"] for c in out["coverages"]] == [REDACTED, REDACTED]
    assert [c["priority"] for c in out["coverages"]] == ["primary", "secondary"]


def test_absent_phi_stays_absent() -> None:
    out = redact(_struct(Claim, factories.claim()), Claim)
    assert out["patient"] is None
    out = redact(_struct(Remittance, factories.remittance()), Remittance)
    assert out["claims"][0]["patient_name"] is None


class Secret(msgspec.Struct):
    code: str
    value: Annotated[str, PHI]


class Model(msgspec.Struct):
    """A made-up model: redaction must follow whatever marks a type carries."""

    label: str
    matrix: list[list[Annotated[str, PHI]]]
    secrets: list[Secret]
    maybe: Secret | None = None
    whole: Annotated[list[int], PHI] = []


def test_redaction_is_derived_from_the_marks() -> None:
    obj = Model(
        label="keep",
        matrix=[["a1", "a2"], [], ["b1"]],
        secrets=[Secret("k1", "s1"), Secret("k2", "s2")],
        maybe=Secret("k3", "s3"),
        whole=[1, 2],
    )
    assert redact(obj, Model) == {
        "label": "keep",
        "matrix": [[REDACTED, REDACTED], [], [REDACTED]],
        "secrets": [{"code": "k1", "value": REDACTED}, {"code": "k2", "value": REDACTED}],
        "maybe": {"code": "k3", "value": REDACTED},
        "whole": REDACTED,
    }
    assert phi_values(obj, Model) == {"a1", "a2", "b1", "s1", "s2", "s3", "1", "2"}


# --- phi_values -----------------------------------------------------------------------------------


def test_phi_values_lists_phi_leaves_only() -> None:
    values = phi_values(_struct(Claim, claim_payload()), Claim)
    assert {"MBR-SENTINEL-1", "Sentinelson", "Quill", "Kidwell", "Tamsin", "Jr", "2015-06-30"} <= values
    assert {"77 Sentinel Rd", "Apt 9", "Quahog", "J02.9", "E11.65", "1980-04-12"} <= values
    assert factories.NPI not in values
    assert "Springfield Clinic" not in values
    assert not any(v.startswith("PCN") for v in values)


def test_phi_values_of_an_account_and_a_remittance() -> None:
    assert {"MBR-SENTINEL-2", "MBR-SENTINEL-3", "Orla"} <= phi_values(account_payload(), PatientAccount)
    assert phi_values(remittance_payload(), Remittance) == {"Sentinelson", "Ivo", "Marchbanks", "Ula", "Q"}


# --- phi_hash -------------------------------------------------------------------------------------


def test_phi_hash_is_short_stable_and_opaque() -> None:
    tag = phi_hash("MBR123456")
    assert re.fullmatch(r"phi:[0-9a-f]{12}", tag)
    assert phi_hash("MBR123456") == tag
    assert phi_hash("MBR123457") != tag
    assert "MBR" not in tag


def test_phi_hash_is_keyed() -> None:
    one, two = PhiHasher(b"k" * 32), PhiHasher(b"j" * 32)
    assert phi_hash("MBR123456", hasher=one) == one("MBR123456") == PhiHasher(b"k" * 32)("MBR123456")
    assert one("MBR123456") != two("MBR123456")
    assert one("MBR123456") != phi_hash("MBR123456")  # the process key is not a fixed one


def test_phi_hasher_refuses_a_short_key() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        PhiHasher(b"short")


# --- the logging filter ---------------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, PhiScrubbingFilter, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    scrubber = PhiScrubbingFilter()
    handler.addFilter(scrubber)
    logger = logging.getLogger(f"test.redaction.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, scrubber, stream
    logger.removeHandler(handler)
    handler.close()


def test_filter_scrubs_message_and_args(captured: tuple[logging.Logger, PhiScrubbingFilter, io.StringIO]) -> None:
    logger, scrubber, stream = captured
    scrubber.add("Sentinelson", "MBR-SENTINEL-1")
    logger.info("patient %s member %s claim %s", "Sentinelson", "mbr-sentinel-1", "PCN000001")
    logger.warning("inline Sentinelson")
    out = stream.getvalue()
    assert "Sentinelson" not in out
    assert "sentinel-1" not in out.lower()
    assert "claim PCN000001" in out
    assert out.count(REDACTED) == 3


def test_filter_scrubs_exception_text(captured: tuple[logging.Logger, PhiScrubbingFilter, io.StringIO]) -> None:
    logger, scrubber, stream = captured
    scrubber.add_phi(_struct(Claim, claim_payload()), Claim)
    try:
        raise ValueError("member MBR-SENTINEL-1 not found for Kidwell")
    except ValueError:
        logger.exception("lookup failed")
    out = stream.getvalue()
    assert "ValueError" in out
    assert "MBR-SENTINEL-1" not in out
    assert "Kidwell" not in out


def test_filter_keeps_short_values_and_untouched_records(
    captured: tuple[logging.Logger, PhiScrubbingFilter, io.StringIO],
) -> None:
    logger, scrubber, stream = captured
    scrubber.add("IL", "Jr", "Quahog")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "state %s", ("IL",), None)
    assert scrubber.filter(record)
    assert record.args == ("IL",)  # nothing to scrub: the record is left as the caller made it
    logger.info("lives in %s, %s", "Quahog", "IL")
    assert stream.getvalue().strip() == f"INFO lives in {REDACTED}, IL"


def test_filter_survives_a_bad_format_string() -> None:
    scrubber = PhiScrubbingFilter(["Sentinelson"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "Sentinelson %s %s", ("one",), None)
    assert scrubber.filter(record)
    assert record.getMessage() == f"{REDACTED} %s %s"


def test_filter_prefers_the_longest_match_and_drops_the_oldest_values() -> None:
    scrubber = PhiScrubbingFilter(["Ana Rivera", "Rivera"], replacement="#")
    assert scrubber.scrub("Ana Rivera and Rivera") == "# and #"
    small = PhiScrubbingFilter(["first-value", "second-value", "third-value"], max_values=2)
    assert small.scrub("first-value second-value third-value") == f"first-value {REDACTED} {REDACTED}"
    small.clear()
    assert small.scrub("second-value") == "second-value"


# --- property: random PHI never survives ----------------------------------------------------------

_text = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))


def _words(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Text a person reads: the canonical types refuse a blank one (all spaces)."""
    return st.text(_text, min_size=min_size, max_size=max_size).filter(is_text)


_name = st.fixed_dictionaries(
    {"family": _words(1, 60), "given": _words(1, 60)},
    optional={"middle": _words(1, 60)},
)
_address = st.fixed_dictionaries(
    {
        "line1": _words(1, 55),
        "city": _words(2, 30),
        "state": st.from_regex(r"[A-Z]{2}", fullmatch=True),
        "postal_code": st.from_regex(r"[0-9]{5}", fullmatch=True),
    }
)
_person = st.fixed_dictionaries(
    {
        "name": _name,
        "birth_date": st.dates(date(1900, 1, 1), date(2025, 12, 31)).map(date.isoformat),  # none ahead
        "address": _address,
    }
)
_member_id = st.from_regex(r"[A-Za-z0-9-]{1,80}", fullmatch=True)
_icd10 = st.from_regex(r"[A-TV-Z][0-9][0-9AB](\.[0-9A-TV-Z]{1,4})?", fullmatch=True)


def _leak_check(obj: Any, type_: type[Any], baseline: bytes) -> None:
    encoded = msgspec.json.encode(redact(obj, type_))
    # Redaction output does not depend on PHI at all: random PHI redacts to what the fixture does.
    assert encoded == baseline
    for value in phi_values(obj, type_):
        as_json = msgspec.json.encode(value)[1:-1]  # the value as it would sit inside a JSON string
        if len(value) >= 4 and as_json not in baseline:
            assert as_json not in encoded


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subscriber=_person, patient=_person, member_id=_member_id, diagnoses=st.lists(_icd10, min_size=2, max_size=12))
def test_random_claim_phi_never_survives(
    subscriber: dict[str, Any], patient: dict[str, Any], member_id: str, diagnoses: list[str]
) -> None:
    payload = claim_payload()
    payload["subscriber"] |= subscriber | {"member_id": member_id}
    payload["patient"] |= patient
    payload["diagnoses"] = diagnoses
    baseline = claim_payload()
    baseline["diagnoses"] = ["J02.9"] * len(diagnoses)
    _leak_check(_struct(Claim, payload), Claim, msgspec.json.encode(redact(_struct(Claim, baseline), Claim)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patient=_person, guarantor=_name, members=st.lists(_member_id, min_size=1, max_size=3))
def test_random_account_phi_never_survives(
    patient: dict[str, Any], guarantor: dict[str, Any], members: list[str]
) -> None:
    payload = account_payload()
    payload["patient"] |= patient
    payload["guarantor"]["name"] = guarantor
    priorities = ["primary", "secondary", "tertiary"]
    template = payload["coverages"][0]
    payload["coverages"] = [
        template | {"member_id": m, "priority": p} for m, p in zip(members, priorities[: len(members)], strict=True)
    ]
    baseline = account_payload()
    baseline["coverages"] = [template | {"priority": p} for p in priorities[: len(members)]]
    expected = msgspec.json.encode(redact(_struct(PatientAccount, baseline), PatientAccount))
    _leak_check(_struct(PatientAccount, payload), PatientAccount, expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_name, min_size=2, max_size=2))
def test_random_remittance_phi_never_survives(names: list[dict[str, Any]]) -> None:
    payload = remittance_payload()
    for claim, name in zip(payload["claims"], names, strict=True):
        claim["patient_name"] = name
    expected = msgspec.json.encode(redact(_struct(Remittance, remittance_payload()), Remittance))
    _leak_check(_struct(Remittance, payload), Remittance, expected)
