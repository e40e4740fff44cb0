"""ISA/GS/ST envelopes around the segments of each transaction set, with every control check.

``EnvelopeReader`` walks one input (several interchanges, groups and sets are fine) and yields a
``TransactionSet`` per ST, whose body the transaction reader iterates, and a ``GroupEnd`` per
functional group once its GE (or the lack of one) has been seen. Problems land at three levels:

- **interchange** (TA1 territory: ISA13 != IEA02, IEA01 != number of groups, an ST outside a
  group, a segment between sets, input cut off inside an interchange, not X12 at all): raised as
  ``X12Error``. A 999 cannot describe them, and nothing read from such an interchange should be
  trusted.
- **group** (AK9: GS06 != GE02, GE01 != number of sets, GE missing): on ``GroupEnd.issues``;
  the group is then rejected as a whole.
- **set** (IK5: ST02 != SE02, SE01 != segments ST..SE, SE missing): on ``TransactionSet.issues``.

``SegmentIssue.code`` follows the acknowledgement that would report it: TA1 codes (``001``,
``021``, ``023``, ``024``) for interchange errors, AK905 codes for GE, IK502 codes for SE, IK304
and IK403 codes for everything inside a set. Positions are 1-based segment ordinals in the input.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from connectors.clearinghouse.x12._lexer import CHUNK_SIZE, Lexer, Source
from connectors.clearinghouse.x12._model import Delimiters, SegmentIssue, X12Error
from connectors.clearinghouse.x12._writer import Envelope, Segment, seg

__all__ = [
    "CONTROL_SEGMENTS",
    "EnvelopeReader",
    "GroupEnd",
    "GroupHeader",
    "InterchangeHeader",
    "SetEnvelope",
    "TransactionSet",
    "check_version",
    "wrong_transaction",
]

CONTROL_SEGMENTS = frozenset({"ISA", "IEA", "GS", "GE", "ST", "SE"})


class InterchangeHeader(msgspec.Struct, frozen=True, kw_only=True):
    control_number: str  # ISA13
    sender_qualifier: str  # ISA05
    sender_id: str  # ISA06, padding removed
    receiver_qualifier: str  # ISA07
    receiver_id: str  # ISA08, padding removed
    date: str  # ISA09 YYMMDD
    time: str  # ISA10 HHMM
    version: str  # ISA12, "00501"
    acknowledgment_requested: bool  # ISA14 == "1": the sender wants a TA1
    usage: str  # ISA15, P or T
    delimiters: Delimiters
    position: int


class GroupHeader(msgspec.Struct, frozen=True, kw_only=True):
    functional_id: str  # GS01, "HP" for an 835
    application_sender: str  # GS02
    application_receiver: str  # GS03
    date: str  # GS04 CCYYMMDD
    time: str  # GS05
    control_number: str  # GS06
    version: str  # GS08, "005010X221A1"
    position: int
    interchange: InterchangeHeader


def reply_envelope(group: GroupHeader) -> Envelope:
    """The envelope of an answer (a 999, a 277) to ``group``: its interchange's sender and receiver
    with their qualifiers (ISA05-08) and the group's application sender and receiver (GS02-03),
    swapped; an interchange of test data (ISA15 T) is answered as test data."""
    isa = group.interchange
    received = Envelope(
        sender_id=isa.sender_id,
        receiver_id=isa.receiver_id,
        sender_qualifier=isa.sender_qualifier,
        receiver_qualifier=isa.receiver_qualifier,
        application_sender=group.application_sender,
        application_receiver=group.application_receiver,
        usage="T" if isa.usage == "T" else "P",
    )
    return received.reply()


def accepted_ta1(isa: InterchangeHeader) -> Segment:
    """The TA1 an interchange asked for (ISA14 ``1``) once its envelope was read without an interchange
    error (one with such an error never gets this far: it is refused whole): accepted, note 000."""
    return seg("TA1", isa.control_number, isa.date, isa.time, "A", "000")


class SetEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """Who a transaction set is: what a 999 must quote back (AK1, AK2) to acknowledge it."""

    transaction_code: str  # ST01
    control_number: str  # ST02
    implementation: str | None  # ST03 (GS08 applies when absent)
    position: int  # of the ST segment in the input
    group: GroupHeader

    @property
    def interchange_control_number(self) -> str:
        return self.group.interchange.control_number

    @property
    def group_control_number(self) -> str:
        return self.group.control_number

    @property
    def version(self) -> str:
        """The implementation guide: ST03, or GS08 when the sender left ST03 out."""
        return self.implementation or self.group.version


class GroupEnd(msgspec.Struct, frozen=True, kw_only=True):
    """A functional group is over: its GE checks, and how many sets it held."""

    group: GroupHeader
    set_count: int  # ST..SE sets actually read
    declared_count: int | None  # GE01, None when GE is missing or not a number
    issues: list[SegmentIssue] = []
    position: int = 0  # of the GE, or of the segment where the GE was found missing


def _issue(position: int, segment_id: str, code: str, message: str, control: str | None = None) -> SegmentIssue:
    return SegmentIssue(segment_id=segment_id, position=position, code=code, message=message, control_number=control)


def _fatal(position: int, segment_id: str, code: str, message: str) -> X12Error:
    return X12Error(_issue(position, segment_id, code, message))


def wrong_transaction(envelope: SetEnvelope, expected: str) -> X12Error:
    """The reader for one transaction type was handed another (an 837 given to ``read_835``)."""
    return X12Error(
        SegmentIssue(
            segment_id="ST",
            position=envelope.position,
            element=1,
            code="1",
            message=f"transaction set {envelope.transaction_code or '(none)'} is not an {expected}",
            control_number=envelope.control_number,
        )
    )


def open_set(envelope: SetEnvelope, code: str, implementation: str) -> list[SegmentIssue]:
    """The opening every set reader shares: a set of another transaction type is refused
    (``X12Error``); one of another implementation guide is read, with an issue on ST03 (returned)."""
    if envelope.transaction_code != code:
        raise wrong_transaction(envelope, code)
    issue = check_version(envelope, implementation)
    return [] if issue is None else [issue]


def check_version(envelope: SetEnvelope, expected: str) -> SegmentIssue | None:
    """An issue on ST03 when the set's guide (ST03, else GS08) does not start with ``expected``."""
    if envelope.version.startswith(expected):
        return None
    return SegmentIssue(
        segment_id="ST",
        position=envelope.position,
        element=3,
        code="7",
        message=f"implementation guide (ST03 or GS08) is not {expected}",
        control_number=envelope.control_number,
    )


def _field(segment: list[str], index: int) -> str:
    return segment[index] if index < len(segment) else ""


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and text.isascii() else None


class TransactionSet:
    """One ST..SE. Iterate it for the body segments (ST and SE excluded), once.

    A reader on the hot path may instead loop over ``raw`` (every following segment, SE and beyond)
    and must then call ``end(segment)`` with the first segment whose id is in ``CONTROL_SEGMENTS``,
    or ``end(None)`` when ``raw`` runs out. ``issues`` holds the SE checks once the set has ended.
    """

    def __init__(self, reader: EnvelopeReader, envelope: SetEnvelope) -> None:
        self.envelope = envelope
        self.issues: list[SegmentIssue] = []
        self.segment_count = 0
        self.done = False
        self.raw: Iterator[list[str]] = reader._segments
        self._reader = reader
        self._body: Iterator[list[str]] | None = None

    def locate(self, segment: list[str]) -> int:
        """Input ordinal of a segment of this set just read (for ``SegmentIssue.position``)."""
        return self._reader._lexer.locate(segment)

    def end(self, segment: list[str] | None) -> None:
        """The set is over at ``segment``: an SE (checked) or whatever came instead of one."""
        if self.done:
            return
        self.done = True
        if segment is None:
            position = self._reader._lexer.count + 1
            raise _fatal(position, "SE", "023", "input ends inside a transaction set (truncated)")
        position = self.locate(segment)
        control = self.envelope.control_number
        if segment[0] != "SE":
            self.segment_count = position - self.envelope.position
            self.issues.append(_issue(position, "SE", "2", "transaction set trailer SE is missing", control))
            self._reader._push_back(segment)
            return
        self.segment_count = position - self.envelope.position + 1
        if _field(segment, 2) != control:
            self.issues.append(_issue(position, "SE", "3", "SE02 does not match the ST02 control number", control))
        if _number(_field(segment, 1)) != self.segment_count:
            message = f"SE01 does not match the {self.segment_count} segments from ST to SE"
            self.issues.append(_issue(position, "SE", "4", message, control))

    def _segments(self) -> Iterator[list[str]]:
        for segment in self.raw:
            if segment[0] in CONTROL_SEGMENTS:
                self.end(segment)
                return
            yield segment
        self.end(None)

    def __iter__(self) -> Iterator[list[str]]:
        if self._body is None:
            self._body = self._segments()
        return self._body


class _OpenGroup:
    """A functional group between its GS and GE."""

    def __init__(self, header: GroupHeader) -> None:
        self.header = header
        self.sets = 0
        self.set_numbers: set[str] = set()

    def end(self, ge: list[str] | None, position: int) -> GroupEnd:
        """The GE checks (``ge`` is None when the group ended without one)."""
        issues = []
        declared = None
        if ge is None:
            issues.append(_issue(position, "GE", "3", "functional group trailer GE is missing"))
        else:
            declared = _number(_field(ge, 1))
            if _field(ge, 2) != self.header.control_number:
                issues.append(_issue(position, "GE", "4", "GE02 does not match the GS06 control number"))
            if declared != self.sets:
                message = f"GE01 does not match the {self.sets} sets in the group"
                issues.append(_issue(position, "GE", "5", message))
        return GroupEnd(
            group=self.header, set_count=self.sets, declared_count=declared, issues=issues, position=position
        )


class EnvelopeReader:
    """Iterate ``TransactionSet`` and ``GroupEnd`` items over an X12 input, checking envelopes."""

    def __init__(self, source: Source, chunk_size: int = CHUNK_SIZE) -> None:
        self._lexer = Lexer(source, chunk_size)
        self._segments = iter(self._lexer)
        self._pending: list[str] | None = None
        self._at: list[str] = []

    @property
    def position(self) -> int:
        """Ordinal of the envelope segment being handled."""
        return self._lexer.locate(self._at)

    def _push_back(self, segment: list[str]) -> None:
        self._pending = segment

    def _next(self) -> list[str] | None:
        segment: list[str] | None
        if self._pending is not None:
            segment, self._pending = self._pending, None
        else:
            segment = next(self._segments, None)
        if segment is not None:
            self._at = segment
        return segment

    def _interchange(self, isa: list[str], still_open: InterchangeHeader | None) -> InterchangeHeader:
        if still_open is not None:
            raise _fatal(self.position, "IEA", "023", "ISA before the IEA of the previous interchange")
        if len(isa) != 17:
            raise _fatal(self.position, "ISA", "024", "ISA must have exactly 16 elements")
        assert self._lexer.delimiters is not None
        return InterchangeHeader(
            control_number=isa[13],
            sender_qualifier=isa[5],
            sender_id=isa[6].strip(),
            receiver_qualifier=isa[7],
            receiver_id=isa[8].strip(),
            date=isa[9],
            time=isa[10],
            version=isa[12],
            acknowledgment_requested=isa[14] == "1",
            usage=isa[15],
            delimiters=self._lexer.delimiters,
            position=self.position,
        )

    def _group(self, gs: list[str], interchange: InterchangeHeader) -> GroupHeader:
        if len(gs) < 9 or not gs[1] or not gs[6] or not gs[8]:
            raise _fatal(self.position, "GS", "024", "GS needs GS01 through GS08 (GS01, GS06, GS08 non-empty)")
        return GroupHeader(
            functional_id=gs[1],
            application_sender=gs[2],
            application_receiver=gs[3],
            date=gs[4],
            time=gs[5],
            control_number=gs[6],
            version=gs[8],
            position=self.position,
            interchange=interchange,
        )

    def __iter__(self) -> Iterator[TransactionSet | GroupEnd]:
        interchange: InterchangeHeader | None = None
        group: _OpenGroup | None = None
        groups = 0
        while (segment := self._next()) is not None:
            tag = segment[0]
            if tag == "ISA":
                interchange, groups = self._interchange(segment, interchange), 0
                continue
            assert interchange is not None  # the lexer starts every interchange at an ISA
            if tag in ("GS", "IEA"):
                if group is not None:
                    yield group.end(None, self.position)
                    group = None
                if tag == "GS":
                    group, groups = _OpenGroup(self._group(segment, interchange)), groups + 1
                else:
                    self._close_interchange(segment, interchange, groups)
                    interchange = None
            elif group is None and tag == "TA1" and groups == 0:
                continue  # an interchange acknowledgment rides before the first GS; nothing here reads it
            elif group is None:
                raise _fatal(self.position, tag, "024", f"{tag} outside a functional group (GS..GE)")
            elif tag == "GE":
                yield group.end(segment, self.position)
                group = None
            elif tag == "ST":
                yield from self._transaction(segment, group)
            else:  # a 999 can only point into sets: a segment between them is an interchange error
                raise _fatal(self.position, tag, "024", f"{tag} is outside any transaction set (ST..SE)")
        if interchange is not None:
            missing = "GE" if group is not None else "IEA"
            position = self._lexer.count + 1
            raise _fatal(position, missing, "023", f"input ends before {missing} (truncated)")

    def _transaction(self, st: list[str], group: _OpenGroup) -> Iterator[TransactionSet]:
        envelope = SetEnvelope(
            transaction_code=_field(st, 1),
            control_number=_field(st, 2),
            implementation=_field(st, 3) or None,
            position=self.position,
            group=group.header,
        )
        group.sets += 1
        tset = TransactionSet(self, envelope)
        if not envelope.transaction_code or not envelope.control_number:
            tset.issues.append(_issue(self.position, "ST", "1", "ST01 and ST02 are required"))
        elif envelope.control_number in group.set_numbers:
            message = "ST02 repeats within the functional group"
            tset.issues.append(_issue(self.position, "ST", "23", message, envelope.control_number))
        group.set_numbers.add(envelope.control_number)
        yield tset
        if not tset.done:  # the consumer stopped early: skip to SE so the envelope stays in step
            for _ in tset:
                pass

    def _close_interchange(self, iea: list[str], interchange: InterchangeHeader, groups: int) -> None:
        if _field(iea, 2) != interchange.control_number:
            raise _fatal(self.position, "IEA", "001", "IEA02 does not match the ISA13 control number")
        if _number(_field(iea, 1)) != groups:
            raise _fatal(self.position, "IEA", "021", f"IEA01 does not match the {groups} groups in the interchange")
