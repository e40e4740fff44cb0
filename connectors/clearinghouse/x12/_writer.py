"""Serialise X12 5010 segments and wrap transaction sets in an ISA/GS/ST envelope.

X12 has no escape character: a value that contains a delimiter cannot be written without changing
the meaning of the file. Every value is therefore checked before it is written, and a value that
contains a delimiter (or any character outside the 5010 extended character set) is refused with a
``ValueError`` naming the segment and element position, never the value itself, which may be PHI.

Segment counts (SE01, GE01, IEA01) are computed here, never passed in, and the control numbers of
each header and trailer pair (ST02/SE02, GS06/GE02, ISA13/IEA02) come from one place, so they cannot
disagree.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple

import msgspec

from canonical.v1 import Address, PersonName
from connectors.clearinghouse.x12._model import DEFAULT_DELIMITERS, Delimiters

__all__ = [
    "MAX_CONTROL_NUMBER",
    "ControlCounter",
    "ControlNumbers",
    "Element",
    "Envelope",
    "FunctionalGroup",
    "Party",
    "Segment",
    "TransactionSet",
    "WrittenInterchange",
    "address_segments",
    "amount",
    "build_interchange",
    "check_delimiters",
    "d8",
    "fit",
    "is_segment_id",
    "organization_nm1",
    "person_nm1",
    "rd8",
    "render_segment",
    "seg",
    "set_control_number",
    "unwritable_paths",
]

# A composite is a tuple of components; ``None`` or ``""`` is an empty element.
Element = str | tuple[str, ...] | None

MAX_CONTROL_NUMBER = 999_999_999
# The 5010 extended character set (X12.6): what a value may contain before delimiters are excluded.
# \Z, not $: Python's $ also matches before a final newline, which would let "Smith\n" through.
_EXTENDED = re.compile(r"""^[A-Za-z0-9!"&'()*+,\-./:;?= %~@\[\]_{}\\|<>^`#$]*\Z""")
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{1,2}\Z")


class Segment(NamedTuple):
    """One segment: its id and its elements in order (element 01 first)."""

    tag: str
    elements: tuple[Element, ...]


def seg(tag: str, *elements: Element) -> Segment:
    """Shorthand: ``seg("NM1", "85", "2", name, None, None, None, None, "XX", npi)``."""
    return Segment(tag, elements)


class Party(msgspec.Struct, frozen=True, kw_only=True):
    """An organisation named in a header loop (submitter, receiver, information receiver/source).

    ``identifier`` is what the two trading partners agreed on (an ETIN, qualifier 46).
    """

    name: str
    identifier: str


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """Who sends an interchange to whom (ISA05-08, GS02-03) and whether it is production data."""

    sender_id: str
    receiver_id: str
    sender_qualifier: str = "ZZ"
    receiver_qualifier: str = "ZZ"
    application_sender: str | None = None  # GS02; the ISA sender id when None
    application_receiver: str | None = None  # GS03; the ISA receiver id when None
    usage: Literal["P", "T"] = "P"  # ISA15
    acknowledgment_requested: bool = False  # ISA14: ask for a TA1

    def reply(self) -> Envelope:
        """The envelope of an answer (999, 277): sender and receiver swapped."""
        return Envelope(
            sender_id=self.receiver_id,
            receiver_id=self.sender_id,
            sender_qualifier=self.receiver_qualifier,
            receiver_qualifier=self.sender_qualifier,
            application_sender=self.application_receiver,
            application_receiver=self.application_sender,
            usage=self.usage,
        )


class ControlNumbers(msgspec.Struct, frozen=True, kw_only=True):
    """ISA13 of the interchange, GS06 of its first group, ST02 of its first set.

    Later groups and sets count up from these. Sets are numbered across the whole interchange, so an
    ST02 identifies one set even when an interchange carries several groups.
    """

    interchange: int
    group: int
    first_set: int = 1

    def __post_init__(self) -> None:
        numbers = (("interchange", self.interchange), ("group", self.group), ("first_set", self.first_set))
        for name, value in numbers:
            if not 1 <= value <= MAX_CONTROL_NUMBER:
                raise ValueError(f"{name} control number must be between 1 and {MAX_CONTROL_NUMBER}")


class ControlCounter:
    """Hands out control numbers for successive interchanges (thread-safe, in memory).

    The caller persists ``peek()`` if numbers must survive a restart and seeds ``start`` from it.
    After 999999999 the counter wraps to 1, as trading partners expect.
    """

    def __init__(self, start: int = 1) -> None:
        if not 1 <= start <= MAX_CONTROL_NUMBER:
            raise ValueError(f"start must be between 1 and {MAX_CONTROL_NUMBER}")
        self._next = start
        self._lock = threading.Lock()

    def peek(self) -> int:
        with self._lock:
            return self._next

    def next(self) -> ControlNumbers:
        """Reserve the next interchange; its first group gets the same number, its sets start at 1."""
        with self._lock:
            number = self._next
            self._next = number % MAX_CONTROL_NUMBER + 1
        return ControlNumbers(interchange=number, group=number)


class TransactionSet(NamedTuple):
    """The segments between ST and SE; the envelope adds ST/SE with the count and control number.

    ``key`` is what the caller wants back for this set (e.g. the claim id), so that a 999 naming the
    set's ST02 can be traced to the business object it carried.
    """

    code: str  # ST01, e.g. "837"
    implementation: str  # ST03, e.g. "005010X222A1"
    body: Sequence[Segment]
    key: str | None = None


class FunctionalGroup(NamedTuple):
    functional_id: str  # GS01, e.g. "HC"
    version: str  # GS08, e.g. "005010X222A1"
    sets: Sequence[TransactionSet]


class WrittenInterchange(msgspec.Struct, frozen=True, kw_only=True):
    """The text of one interchange and the control numbers it used."""

    text: str
    interchange_control_number: str  # ISA13, nine digits
    group_control_numbers: tuple[str, ...]  # GS06 of each group, in order
    set_control_numbers: tuple[str, ...]  # ST02 of each set, in order
    set_keys: dict[str, str] = {}  # ST02 -> the key the caller gave the set (claim id, ...)

    @property
    def data(self) -> bytes:
        return self.text.encode("ascii")


def check_delimiters(delimiters: Delimiters) -> None:
    """Four distinct single characters, none of them a letter, digit or space."""
    chars = (delimiters.element, delimiters.repetition, delimiters.component, delimiters.segment)
    for char in chars:
        if len(char) != 1:
            raise ValueError("each X12 delimiter must be exactly one character")
        if char.isalnum() or char == " ":
            raise ValueError(f"{char!r} cannot be an X12 delimiter: it can occur in data")
    if len(set(chars)) != len(chars):
        raise ValueError("the four X12 delimiters must be distinct")


def _check_value(value: str, where: str, delimiters: Delimiters) -> None:
    names = (
        ("element separator", delimiters.element),
        ("repetition separator", delimiters.repetition),
        ("component separator", delimiters.component),
        ("segment terminator", delimiters.segment),
    )
    for name, char in names:
        if char in value:
            raise ValueError(f"{where} contains the {name} {char!r}; X12 cannot escape it, refusing to write")
    if not _EXTENDED.match(value):
        raise ValueError(f"{where} contains a character outside the X12 extended character set")


def is_segment_id(tag: str) -> bool:
    """Whether ``tag`` has the form of an X12 segment id (a letter, then one or two letters or digits)."""
    return _SEGMENT_ID.match(tag) is not None


def unwritable_paths(value: Any, delimiters: Delimiters = DEFAULT_DELIMITERS, at: str = "") -> list[str]:
    """The JSON paths of the strings in ``value`` (builtins: dicts, lists, scalars) that no X12 element
    written with ``delimiters`` can carry: a character outside the extended set, or a delimiter
    (X12 has no escape). Paths only, never the values: they may be PHI."""
    if isinstance(value, str):
        try:
            _check_value(value, at, delimiters)
        except ValueError:
            return [at]
        return []
    if isinstance(value, dict):
        return [
            p for key, item in value.items() for p in unwritable_paths(item, delimiters, f"{at}.{key}" if at else key)
        ]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in unwritable_paths(item, delimiters, f"{at}[{i}]")]
    return []


def render_segment(segment: Segment, delimiters: Delimiters = DEFAULT_DELIMITERS) -> str:
    """One segment with its terminator. Trailing empty elements and components are dropped."""
    if not is_segment_id(segment.tag):
        raise ValueError(f"{segment.tag!r} is not an X12 segment id")
    texts: list[str] = []
    for position, element in enumerate(segment.elements, start=1):
        where = f"{segment.tag}{position:02d}"
        if element is None:
            texts.append("")
        elif isinstance(element, str):
            _check_value(element, where, delimiters)
            texts.append(element)
        else:
            parts = list(element)
            for number, component in enumerate(parts, start=1):
                _check_value(component, f"{where}-{number}", delimiters)
            while parts and not parts[-1]:
                parts.pop()
            texts.append(delimiters.component.join(parts))
    while texts and not texts[-1]:
        texts.pop()
    if not texts:
        raise ValueError(f"segment {segment.tag} has no data")
    return delimiters.element.join((segment.tag, *texts)) + delimiters.segment


def set_control_number(number: int) -> str:
    """ST02: at least four digits (X12 minimum length), at most nine."""
    if not 1 <= number <= MAX_CONTROL_NUMBER:
        raise ValueError(f"transaction set control number must be between 1 and {MAX_CONTROL_NUMBER}")
    return f"{number:04d}"


def fit(value: str, max_length: int, what: str, *, min_length: int = 1) -> str:
    """Refuse (without echoing it) a value longer or shorter than its X12 element allows."""
    if not min_length <= len(value) <= max_length:
        raise ValueError(f"{what} must be {min_length}-{max_length} characters for X12")
    return value


def d8(day: date) -> str:
    return day.strftime("%Y%m%d")


def rd8(start: date, end: date) -> str:
    return f"{d8(start)}-{d8(end)}"


def amount(value: Decimal) -> str:
    """X12 R (decimal) text of a two-place amount, exactly as held: ``125.00``, ``-3.10``."""
    return str(value)


def _isa(envelope: Envelope, control: int, when: datetime, delimiters: Delimiters) -> str:
    def pad(value: str, width: int, what: str) -> str:
        fit(value, width, what)
        _check_value(value, what, delimiters)
        return value.ljust(width)

    fields = (
        "ISA",
        "00",
        " " * 10,
        "00",
        " " * 10,
        pad(envelope.sender_qualifier, 2, "ISA05"),
        pad(envelope.sender_id, 15, "ISA06"),
        pad(envelope.receiver_qualifier, 2, "ISA07"),
        pad(envelope.receiver_id, 15, "ISA08"),
        when.strftime("%y%m%d"),
        when.strftime("%H%M"),
        delimiters.repetition,
        "00501",
        f"{control:09d}",
        "1" if envelope.acknowledgment_requested else "0",
        envelope.usage,
        delimiters.component,
    )
    return delimiters.element.join(fields) + delimiters.segment


def build_interchange(
    groups: Sequence[FunctionalGroup],
    *,
    envelope: Envelope,
    control: ControlNumbers,
    created: datetime | None = None,
    delimiters: Delimiters = DEFAULT_DELIMITERS,
    newline: bool = False,
    interchange_acks: Sequence[Segment] = (),
) -> WrittenInterchange:
    """ISA, any TA1s (interchange acknowledgments go before the first GS), then per group GS, its sets
    (ST ... SE) and GE, then IEA.

    ``newline`` puts a line break after every segment terminator (readable, and accepted by
    translators); the terminator itself is always ``delimiters.segment``.
    """
    check_delimiters(delimiters)
    if not groups:
        raise ValueError("an interchange needs at least one functional group")
    when = (created or datetime.now(UTC)).replace(second=0, microsecond=0)
    eol = "\n" if newline and delimiters.segment != "\n" else ""
    lines = [_isa(envelope, control.interchange, when, delimiters)]
    lines += [render_segment(ta1, delimiters) for ta1 in interchange_acks]
    group_numbers: list[str] = []
    set_numbers: list[str] = []
    keys: dict[str, str] = {}
    next_set = control.first_set
    for offset, group in enumerate(groups):
        if not group.sets:
            raise ValueError("a functional group needs at least one transaction set")
        group_number = str((control.group + offset - 1) % MAX_CONTROL_NUMBER + 1)
        group_numbers.append(group_number)
        gs = seg(
            "GS",
            group.functional_id,
            fit(envelope.application_sender or envelope.sender_id, 15, "GS02", min_length=2),
            fit(envelope.application_receiver or envelope.receiver_id, 15, "GS03", min_length=2),
            when.strftime("%Y%m%d"),
            when.strftime("%H%M"),
            group_number,
            "X",
            group.version,
        )
        lines.append(render_segment(gs, delimiters))
        for tset in group.sets:
            number = set_control_number(next_set)
            next_set += 1
            set_numbers.append(number)
            if tset.key is not None:
                keys[number] = tset.key
            lines.extend(_render_set(tset, number, delimiters))
        lines.append(render_segment(seg("GE", str(len(group.sets)), group_number), delimiters))
    isa13 = f"{control.interchange:09d}"
    lines.append(render_segment(seg("IEA", str(len(groups)), isa13), delimiters))
    return WrittenInterchange(
        text="".join(line + eol for line in lines),
        interchange_control_number=isa13,
        group_control_numbers=tuple(group_numbers),
        set_control_numbers=tuple(set_numbers),
        set_keys=keys,
    )


def _render_set(tset: TransactionSet, number: str, delimiters: Delimiters) -> Iterable[str]:
    if not tset.body:
        raise ValueError("a transaction set needs at least one segment between ST and SE")
    for segment in tset.body:
        if segment.tag in ("ISA", "IEA", "GS", "GE", "ST", "SE"):
            raise ValueError(f"{segment.tag} is written by the envelope, not the transaction set")
    yield render_segment(seg("ST", tset.code, number, tset.implementation), delimiters)
    for segment in tset.body:
        yield render_segment(segment, delimiters)
    yield render_segment(seg("SE", str(len(tset.body) + 2), number), delimiters)


# -- Health-care segments shared by the 837P, 276 and 277 writers ---------------------------------


def person_nm1(entity: str, name: PersonName, id_qualifier: str | None = None, ident: str | None = None) -> Segment:
    """NM1 for a person (NM102 ``1``) with 5010 lengths: last 60, first 35, middle 25, suffix 10."""
    return seg(
        "NM1",
        entity,
        "1",
        fit(name.family, 60, f"NM1*{entity} last name"),
        fit(name.given, 35, f"NM1*{entity} first name"),
        fit(name.middle, 25, f"NM1*{entity} middle name") if name.middle else None,
        None,
        fit(name.suffix, 10, f"NM1*{entity} name suffix") if name.suffix else None,
        id_qualifier,
        fit(ident, 80, f"NM1*{entity} identifier", min_length=2) if ident is not None else None,
    )


def organization_nm1(entity: str, name: str, id_qualifier: str, ident: str) -> Segment:
    """NM1 for an organisation (NM102 ``2``): name 1-60, identifier 2-80."""
    return seg(
        "NM1",
        entity,
        "2",
        fit(name, 60, f"NM1*{entity} name"),
        None,
        None,
        None,
        None,
        id_qualifier,
        fit(ident, 80, f"NM1*{entity} identifier", min_length=2),
    )


def address_segments(address: Address) -> list[Segment]:
    """N3 and N4; N404 (country) only outside the US, as the 5010 guides require."""
    return [
        seg("N3", address.line1, address.line2),
        seg(
            "N4",
            address.city,
            address.state,
            address.postal_code,
            address.country if address.country != "US" else None,
        ),
    ]
