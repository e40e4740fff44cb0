"""Synthetic canonical objects for the X12 tests: fixed examples and hypothesis strategies.

Everything here is made up. NPIs carry a correct Luhn digit; claim totals equal the sum of their
lines; codes come from lists the 5010 guides (and pyx12's code tables) accept.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import strategies as st

from canonical import Amount, npi_is_valid
from canonical.v1 import (
    Address,
    Claim,
    ClaimStatus,
    Payer,
    Person,
    PersonName,
    Provider,
    ServiceLine,
    Subscriber,
)
from connectors.clearinghouse.x12._inquiry import StatusInquiry
from connectors.clearinghouse.x12._model import DEFAULT_DELIMITERS, Delimiters
from connectors.clearinghouse.x12._write837 import Submitter
from connectors.clearinghouse.x12._writer import ControlNumbers, Envelope, Party

CREATED = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
ENVELOPE = Envelope(sender_id="HUBSENDER", receiver_id="CLEARINGHOUSE", usage="T")
CONTROL = ControlNumbers(interchange=101, group=101)
SUBMITTER = Submitter(name="BILLING HUB", identifier="HUB001", contact_name="EDI DESK", phone="8005551212")
RECEIVER = Party(name="ACME CLEARINGHOUSE", identifier="ACMECH")

# Codes pyx12's external code tables (and real payers) accept.
STATES = ("AL", "AZ", "CA", "CO", "FL", "GA", "IL", "MA", "MI", "NY", "OH", "PA", "TX", "WA")
PLACES = ("02", "10", "11", "12", "19", "20", "21", "22", "23", "31", "49", "81")
TAXONOMIES = ("207Q00000X", "208D00000X", "207R00000X", "363LF0000X", "261QP2300X")


def with_check_digit(first_nine: str) -> str:
    return next(npi for digit in "0123456789" if npi_is_valid(npi := first_nine + digit))


BILLING_NPI = with_check_digit("123456789")  # 1234567893, the CMS example
RENDERING_NPI = with_check_digit("198765432")


def billing_provider() -> Provider:
    return Provider(
        npi=BILLING_NPI,
        name="RIVERSIDE FAMILY PRACTICE",
        tax_id="123456789",
        taxonomy="207Q00000X",
        address=Address(line1="100 MAIN ST", line2="SUITE 2", city="SPRINGFIELD", state="IL", postal_code="627011234"),
    )


def sample_claim(*, dependent: bool = False, claim_id: str = "PCN-0001") -> Claim:
    """A two-line claim; with ``dependent`` the patient is the subscriber's child (loop 2000C)."""
    subscriber_address = Address(line1="12 ELM ST", city="SPRINGFIELD", state="IL", postal_code="62704")
    subscriber = Subscriber(
        name=PersonName(family="DOE", given="JOHN", middle="Q"),
        birth_date=date(1980, 1, 15),
        sex="M",
        address=subscriber_address,
        member_id="XYZ123456789",
        group_number="GRP100",
        relationship_to_patient="child" if dependent else "self",
    )
    patient = (
        Person(
            name=PersonName(family="DOE", given="JANE"),
            birth_date=date(2012, 6, 1),
            sex="F",
            address=subscriber_address,
        )
        if dependent
        else None
    )
    lines = [
        ServiceLine(
            procedure="99213",
            modifiers=["25"],
            charge=Amount("125.00"),
            service_date=date(2024, 3, 1),
            diagnosis_pointers=[1, 2],
        ),
        ServiceLine(
            procedure="87880",
            units=2,
            charge=Amount("40.50"),
            service_date=date(2024, 3, 1),
            diagnosis_pointers=[2],
            place_of_service="22",
        ),
    ]
    return Claim(
        claim_id=claim_id,
        account_number="ACCT-77",
        billing_provider=billing_provider(),
        rendering_provider=Provider(npi=RENDERING_NPI, name="SMITH ANNA MD", taxonomy="207R00000X"),
        payer=Payer(payer_id="60054", name="AETNA"),
        subscriber=subscriber,
        patient=patient,
        diagnoses=["J02.9", "R50.9"],
        service_lines=lines,
        prior_authorization="AUTH-9",
        total_charge=Amount("165.50"),
    )


def sample_inquiry(*, dependent: bool = False) -> StatusInquiry:
    return StatusInquiry(
        claim_id="PCN-0001",
        payer=Payer(payer_id="60054", name="AETNA"),
        provider_npi=BILLING_NPI,
        provider_name="RIVERSIDE FAMILY PRACTICE",
        subscriber_member_id="XYZ123456789",
        subscriber_name=PersonName(family="DOE", given="JOHN", middle="Q"),
        subscriber_birth_date=date(1980, 1, 15),
        patient_name=PersonName(family="DOE", given="JANE") if dependent else None,
        patient_birth_date=date(2012, 6, 1) if dependent else None,
        service_date_from=date(2024, 3, 1),
        service_date_to=date(2024, 3, 2),
        billed_amount=Amount("165.50"),
        payer_claim_number="PYR555" if dependent else None,
        trace_number="TRACE-0001",
    )


def sample_status(*, category: str = "A1", status: str = "20", source: str = "277") -> ClaimStatus:
    return ClaimStatus(
        claim_id="PCN-0001",
        category_code=category,
        status_code=status,
        entity_code="1P" if source == "277" else None,
        payer_claim_number="PYR555",
        billed_amount=Amount("165.50"),
        paid_amount=Amount("0.00"),
        effective_date=date(2024, 3, 4),
        source=source,  # type: ignore[arg-type]
    )


def split(text: str, delimiters: Delimiters = DEFAULT_DELIMITERS) -> list[list[str]]:
    """The segments of a written interchange as lists of elements (composites left joined)."""
    body = text.replace("\n", "") if delimiters.segment != "\n" else text
    return [raw.split(delimiters.element) for raw in body.split(delimiters.segment) if raw]


def tags(text: str, delimiters: Delimiters = DEFAULT_DELIMITERS) -> list[str]:
    return [segment[0] for segment in split(text, delimiters)]


def set_bodies(text: str) -> list[list[list[str]]]:
    """Each transaction set ST..SE (inclusive) as its own list of segments."""
    sets: list[list[list[str]]] = []
    for segment in split(text):
        if segment[0] == "ST":
            sets.append([])
        if sets and (segment[0] != "GE" and segment[0] != "IEA" and segment[0] != "GS"):
            sets[-1].append(segment)
    return sets


# -- hypothesis strategies -----------------------------------------------------------------------

npis = st.from_regex(r"[12][0-9]{8}", fullmatch=True).map(with_check_digit)
words = st.from_regex(r"[A-Z][a-z]{1,11}", fullmatch=True)
names = st.builds(
    PersonName,
    family=st.from_regex(r"[A-Z][a-z]{1,15}(-[A-Z][a-z]{1,10})?|O'[A-Z][a-z]{2,8}", fullmatch=True),
    given=words,
    middle=st.none() | st.from_regex(r"[A-Z]", fullmatch=True),
    suffix=st.none() | st.sampled_from(["JR", "SR", "III"]),
)
dates = st.dates(min_value=date(1930, 1, 1), max_value=date(2024, 12, 31))
service_dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2024, 12, 31))


def addresses(*, zip9: bool = False) -> st.SearchStrategy[Address]:
    return st.builds(
        Address,
        line1=st.from_regex(r"[1-9][0-9]{0,4} [A-Z][a-z]{2,12} (St|Ave|Rd|Blvd)", fullmatch=True),
        line2=st.none() | st.from_regex(r"(Apt|Suite|Unit) [1-9][0-9]{0,3}", fullmatch=True),
        city=st.from_regex(r"[A-Z][a-z]{2,14}( [A-Z][a-z]{2,10})?", fullmatch=True),
        state=st.sampled_from(STATES),
        postal_code=st.from_regex(r"[0-9]{9}" if zip9 else r"[0-9]{5}([0-9]{4})?", fullmatch=True),
    )


org_names = st.from_regex(r"[A-Z][A-Za-z]{2,15}( [A-Z][A-Za-z&]{1,15}){0,2}", fullmatch=True)  # NM103: <= 60
icd10 = st.from_regex(r"[A-TV-Z][0-9][0-9AB]([0-9A-TV-Z]{1,4})?", fullmatch=True)
procedures = st.from_regex(r"[0-9]{4}[0-9FTU]|[A-V][0-9]{4}", fullmatch=True)
charges = st.integers(min_value=1, max_value=5_000_000).map(lambda cents: Amount(Decimal(cents) / 100))


@st.composite
def service_lines(draw: st.DrawFn, diagnosis_count: int) -> ServiceLine:
    pointers = draw(
        st.lists(st.integers(1, diagnosis_count), min_size=1, max_size=min(4, diagnosis_count), unique=True)
    )
    return ServiceLine(
        procedure=draw(procedures),
        modifiers=draw(st.lists(st.from_regex(r"[A-Z0-9]{2}", fullmatch=True), max_size=4)),
        units=draw(st.integers(1, 9999)),
        charge=draw(charges),
        service_date=draw(service_dates),
        diagnosis_pointers=pointers,
        place_of_service=draw(st.none() | st.sampled_from(PLACES)),
    )


providers = st.builds(
    Provider,
    npi=npis,
    name=org_names,
    tax_id=st.from_regex(r"[0-9]{9}", fullmatch=True),
    taxonomy=st.none() | st.sampled_from(TAXONOMIES),
    address=addresses(zip9=True),
)


_PAYER_CLAIM_NUMBERS = st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,19}", fullmatch=True)


@st.composite
def claims(draw: st.DrawFn) -> Claim:
    """A valid canonical claim: Luhn NPIs, pointers within the diagnoses, total = sum of lines."""
    diagnoses = draw(st.lists(icd10, min_size=1, max_size=12))
    lines = draw(st.lists(service_lines(len(diagnoses)), min_size=1, max_size=8))
    relationship = draw(st.sampled_from(["self", "self", "spouse", "child", "other"]))
    subscriber = Subscriber(
        name=draw(names),
        birth_date=draw(dates),
        sex=draw(st.sampled_from(["F", "M", "U"])),
        address=draw(addresses()),
        member_id=draw(st.from_regex(r"[A-Z0-9][A-Za-z0-9-]{1,19}", fullmatch=True)),
        group_number=draw(st.none() | st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True)),
        relationship_to_patient=relationship,
    )
    patient = None
    if relationship != "self":
        patient = Person(
            name=draw(names),
            birth_date=draw(dates),
            sex=draw(st.sampled_from(["F", "M", "U"])),
            address=draw(addresses()),
        )
    return Claim(
        claim_id=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}", fullmatch=True)),
        account_number=draw(st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True)),
        billing_provider=draw(providers),
        rendering_provider=draw(
            st.none() | providers.map(lambda p: Provider(npi=p.npi, name=p.name, taxonomy=p.taxonomy))
        ),
        payer=Payer(payer_id=draw(st.from_regex(r"[A-Z0-9]{5}", fullmatch=True)), name=draw(org_names)),
        subscriber=subscriber,
        patient=patient,
        diagnoses=diagnoses,
        service_lines=lines,
        place_of_service=draw(st.sampled_from(PLACES)),
        frequency_code=(frequency := draw(st.sampled_from(["1", "7", "8"]))),
        prior_authorization=draw(st.none() | st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,19}", fullmatch=True)),
        payer_claim_number=None if frequency == "1" else draw(_PAYER_CLAIM_NUMBERS),
        total_charge=Amount(sum(line.charge for line in lines)),
    )
