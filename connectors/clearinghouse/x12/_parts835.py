"""835 segments to canonical pieces: CAS, SVC01, PLB, NM1*QC, remark codes, the header segments.

Each function reads one segment and either returns canonical values or raises ``ReadError``
naming the element at fault. The claim loop in ``_remit835`` decides what they belong to.
"""

from __future__ import annotations

from canonical._codes import PatientControlNumber, is_text
from canonical.v1 import Adjustment, PersonName, ProviderAdjustment
from canonical.v1.balancing import RULE_CLAIM, RULE_LINE, RULE_TRANSACTION
from connectors.clearinghouse.x12._values import MemoSet, ReadError, d8, element, money, optional, quantity

__all__ = [
    "ACCEPTED_DETAIL",
    "CARC",
    "CLAIM_ID",
    "CLAIM_STATUSES",
    "DETAIL_START",
    "GROUPS",
    "HEADER_SEGMENTS",
    "LOOP_STARTS",
    "PAYMENT_METHODS",
    "RULE_CLAIM",
    "RULE_LINE",
    "RULE_TRANSACTION",
    "adjustments",
    "patient_name",
    "procedure",
    "provider_adjustments",
    "reference",
    "remarks",
]


# CAS01 in 005010X221: CO, OA, PI, PR. CR (correction and reversal) was dropped in 5010, where a
# reversal is a CLP02 22 claim carrying the original group codes.
GROUPS = frozenset({"CO", "PR", "OA", "PI"})
CLAIM_STATUSES = frozenset({"1", "2", "3", "4", "19", "20", "21", "22", "23", "25"})
PAYMENT_METHODS = frozenset({"ACH", "CHK", "BOP", "FWT", "NON"})
DETAIL_START = frozenset({"LX", "TS3", "TS2", "CLP", "PLB"})
LOOP_STARTS = frozenset({"SVC", "CLP", "LX", "PLB", "TS3"})
HEADER_SEGMENTS = frozenset({"BPR", "TRN", "CUR", "REF", "DTM", "N1", "N3", "N4", "PER", "RDM"})
ACCEPTED_DETAIL = frozenset({"NM1", "MIA", "MOA", "AMT", "QTY", "PER", "REF", "DTM", "LQ", "TS3", "TS2", "LX"})
CARC = MemoSet(r"^([0-9]{1,3}|[A-Z][0-9]{1,2})\Z")
RARC = MemoSet(r"^(MA|M|N)[0-9]{1,3}\Z")
CLAIM_ID = MemoSet.of(PatientControlNumber)  # what ClaimPayment.claim_id holds
_PLB_REASON = MemoSet(r"^[A-Z0-9]{2}\Z")
_TWO_CHARS = MemoSet(r"^[A-Z0-9]{2}\Z")
_CODE = MemoSet(r"^[A-Za-z0-9]{1,48}\Z")
_PROCEDURES: dict[str, tuple[str, str, list[str]]] = {}
_C003_SIZE = 8  # qualifier, code, four modifiers, description, product/service id


def reference(text: str | None, index: int, what: str) -> str | None:
    if text is not None and len(text) > 50:
        raise ReadError(index, "5", f"{what} is longer than 50 characters")
    return text


def procedure(composite: str, separator: str, index: int = 1) -> tuple[str, str, list[str]]:
    """SVC01/SVC06, a C003: qualifier, code, modifiers 1-4; the description (7) and the product or
    service id (8) have no canonical field and are not mapped."""
    known = _PROCEDURES.get(composite)
    if known is not None:
        return known
    parts = composite.split(separator)
    if len(parts) > _C003_SIZE:
        raise ReadError(index, "13", "procedure has more than the eight components of a C003", _C003_SIZE + 1)
    if parts[0] not in _TWO_CHARS:
        raise ReadError(index, "7", "procedure qualifier must be two capital letters or digits", 1)
    if len(parts) < 2 or parts[1] not in _CODE:
        raise ReadError(index, "6", "procedure code must be 1-48 letters or digits", 2)
    result = (parts[0], parts[1], _modifiers(parts[2:6], index))
    if len(_PROCEDURES) >= 4096:
        _PROCEDURES.clear()
    _PROCEDURES[composite] = result
    return result


def _modifiers(texts: list[str], index: int) -> list[str]:
    """Procedure modifiers 1-4 (C003-03 to -06) in their positions, which carry meaning (modifier 1
    prices the service). Empty ones at the end are absent; an empty one before a later one is
    refused: the canonical list has no gaps, so the later one would be reported in its place."""
    last = max((number for number, text in enumerate(texts) if text), default=-1)
    for number, modifier in enumerate(texts[: last + 1], start=3):
        if not modifier:
            raise ReadError(index, "1", "procedure modifier is empty but a later one is present", number)
        if modifier not in _TWO_CHARS:
            raise ReadError(index, "6", "procedure modifier must be two capital letters or digits", number)
    return texts[: last + 1]


def adjustments(cas: list[str]) -> list[Adjustment]:
    """CAS: a group code, then up to six (reason, amount, quantity) triplets, gaps allowed."""
    group = cas[1] if len(cas) > 1 else ""
    if group not in GROUPS:
        raise ReadError(1, "7", "CAS01 is not a 5010 claim adjustment group code (CO, OA, PI, PR)")
    if len(cas) > 20:
        raise ReadError(20, "3", "CAS has more than six adjustment triplets")
    found: list[Adjustment] = []
    size = len(cas)
    for index in range(2, size, 3):
        reason = cas[index]
        amount_text = cas[index + 1] if index + 1 < size else ""
        quantity_text = cas[index + 2] if index + 2 < size else ""
        if not reason:
            if amount_text or quantity_text:
                raise ReadError(index, "1", "CAS reason code missing before its amount")
            continue
        if reason not in CARC:
            raise ReadError(index, "7", "CAS reason is not a claim adjustment reason code")
        if not amount_text:
            raise ReadError(index + 1, "1", "CAS amount missing after its reason code")
        found.append(
            Adjustment(
                group=group,  # type: ignore[arg-type]  # checked against GROUPS above
                reason=reason,
                amount=money(amount_text, index + 1, "adjustment amount"),
                quantity=quantity(quantity_text, index + 2) if quantity_text else None,
            )
        )
    if not found:
        raise ReadError(2, "1", "CAS needs at least one reason and amount")
    return found


def remarks(segment: list[str], indexes: range | tuple[int, ...], into: list[str]) -> None:
    """Append the remittance advice remark codes found at ``indexes`` (MOA, MIA, LQ*HE)."""
    for index in indexes:
        if index < len(segment) and segment[index]:
            if segment[index] not in RARC:
                raise ReadError(index, "7", "remark code is not a RARC (M, MA or N and digits)")
            into.append(segment[index])


def patient_name(nm1: list[str]) -> PersonName | None:
    """NM1*QC as a ``PersonName``; ``None`` when there is no first name (the caller warns)."""
    family, given = element(nm1, 3, "patient last name"), optional(nm1, 4)
    if given is None:
        return None
    middle, suffix = optional(nm1, 5), optional(nm1, 7)
    for index, value, limit in ((3, family, 60), (4, given, 60), (5, middle, 60), (7, suffix, 10)):
        if value is not None and len(value) > limit:
            raise ReadError(index, "5", f"NM1{index:02d} is longer than {limit} characters")
        if value is not None and not is_text(value):
            raise ReadError(index, "6", f"NM1{index:02d} is blank or holds a control character")
    return PersonName(family=family, given=given, middle=middle, suffix=suffix)


def provider_adjustments(plb: list[str], separator: str) -> list[ProviderAdjustment]:
    """PLB01 provider, PLB02 fiscal period end, then up to six (reason:reference, amount) pairs."""
    element(plb, 1, "provider identifier")
    d8(element(plb, 2, "fiscal period date"), 2, "PLB02 fiscal period date")
    if len(plb) > 15:
        raise ReadError(15, "3", "PLB has more than six adjustments")
    found: list[ProviderAdjustment] = []
    for index in range(3, len(plb), 2):
        composite = plb[index]
        amount_text = plb[index + 1] if index + 1 < len(plb) else ""
        if not composite:
            if amount_text:
                raise ReadError(index, "1", "PLB adjustment identifier missing before its amount")
            continue
        parts = composite.split(separator)
        if parts[0] not in _PLB_REASON:
            raise ReadError(index, "7", "PLB adjustment reason is not a two-character code", 1)
        ref = parts[1] if len(parts) > 1 and parts[1] else None
        if ref is not None and len(ref) > 50:
            raise ReadError(index, "5", "PLB reference identification is longer than 50 characters", 2)
        if not amount_text:
            raise ReadError(index + 1, "1", "PLB adjustment amount is required")
        amount = money(amount_text, index + 1, "provider adjustment amount")
        found.append(ProviderAdjustment(reason=parts[0], reference=ref, amount=amount))
    if not found:
        raise ReadError(3, "1", "PLB needs at least one adjustment")
    return found
