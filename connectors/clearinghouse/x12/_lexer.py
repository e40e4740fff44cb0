"""Split X12 bytes into segments, chunk by chunk, with the delimiters each ISA declares.

Nothing here knows about loops or transaction sets; the envelope reader does. The lexer only knows
that an interchange starts with a 106-character ISA whose 4th character is the element separator,
whose 16th element is the component separator and whose next character terminates segments, and
that the interchange ends at IEA, after which another ISA (with other delimiters) may follow.

Hot path: each decoded chunk is split on the segment terminator with ``str.split`` and each segment
on the element separator; only the tail after the last terminator is carried to the next chunk, so
memory is one chunk plus one partial segment whatever the input size.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Protocol

from connectors.clearinghouse.x12._model import Delimiters, SegmentIssue, X12Error

__all__ = ["CHUNK_SIZE", "ISA_LENGTH", "Lexer", "Readable", "Source", "parse_isa_delimiters"]

CHUNK_SIZE = 64 * 1024
ISA_LENGTH = 106  # "ISA" + 16 fixed-width elements + 16 separators + terminator
_ISA_ELEMENTS = 16
_BLANK = " \t\r\n"  # dropped between and within segments, so never an element or component separator
_SCAN_LIMIT = 1024  # an ISA longer than this (padding gone wrong) is not an ISA
MAX_SEGMENT = 1024 * 1024  # no real segment comes near this; without a terminator, memory would grow


class Readable(Protocol):
    """A binary stream: an open file, ``io.BytesIO``, a socket's ``makefile('rb')``..."""

    def read(self, size: int, /) -> bytes: ...


Source = bytes | bytearray | memoryview | Readable


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    """Bytes that are not UTF-8 are read as Latin-1: X12 data is ASCII, so this only touches names.

    A stray byte must not stop a whole remittance; decoding it as the single character it most
    likely was keeps every delimiter in place.
    """
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return bytes(error.object[error.start : error.end]).decode("latin-1"), error.end


codecs.register_error("x12-latin1", _latin1_fallback)


def _chunks(source: Source, size: int) -> Iterator[bytes | memoryview]:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), size):
            yield view[start : start + size]
        return
    while True:
        block = source.read(size)
        if not block:
            return
        yield block


def _error(position: int, segment_id: str, message: str, code: str = "1") -> X12Error:
    return X12Error(SegmentIssue(segment_id=segment_id, position=position, code=code, message=message))


def parse_isa_delimiters(isa: str, position: int = 1) -> tuple[Delimiters, list[str]]:
    """Delimiters and the 17 fields (``ISA`` + ISA01..ISA16) of an ISA that starts ``isa``.

    ``isa`` must begin with ``ISA`` and hold at least the whole segment and its terminator.
    Trading partners sometimes trim the fixed-width padding, so the fields are found by the
    element separator rather than by fixed offsets; the terminator is the character after ISA16.
    """
    if len(isa) < 5 or not isa.startswith("ISA"):
        raise _error(position, "ISA", "input does not start with an ISA segment")
    element = isa[3]
    # Not str.isspace(): it is true of the information separators 0x1C-0x1F, which partners use as
    # delimiters precisely because they never occur in data.
    if element.isalnum() or element in _BLANK:
        raise _error(position, "ISA", "ISA element separator is a letter, digit, space or line break")
    fields: list[str] = []
    start = 0
    for _ in range(_ISA_ELEMENTS):
        end = isa.find(element, start, _SCAN_LIMIT)
        if end < 0:
            raise _error(position, "ISA", "ISA has fewer than 16 elements or is truncated")
        fields.append(isa[start:end])
        start = end + 1
    if len(isa) < start + 2:
        raise _error(position, "ISA", "ISA is truncated before its segment terminator")
    component, segment = isa[start], isa[start + 1]
    fields.append(component)
    repetition = fields[11]
    if len(repetition) != 1:
        raise _error(position, "ISA", "ISA11 must be one character", code="6")
    if component.isalnum() or component in _BLANK or component == element:
        raise _error(position, "ISA", "ISA16 component separator is not a valid delimiter", code="6")
    if segment.isalnum() or segment == " " or segment in (element, component):
        raise _error(position, "ISA", "segment terminator after ISA16 is not a valid delimiter", code="6")
    delimiters = Delimiters(element=element, repetition=repetition, component=component, segment=segment)
    return delimiters, fields


class Lexer:
    """Iterate over the segments of one or more interchanges as lists of element strings.

    ``segment[0]`` is the segment id; ``segment[n]`` is element *n*. ``delimiters`` are those of the
    interchange being read. ``locate(segment)`` gives the 1-based ordinal of a segment just yielded;
    ``count`` is how many segments have been read so far. A UTF-8 byte order mark, blank lines and
    white space between segments are ignored. CR and LF are never X12 data characters, so unless one
    of them *is* the segment terminator they are removed wherever they occur.

    Each chunk is split into a batch of segments at once and the batch handed out with
    ``yield from``: positions are not counted one by one, which is why they are looked up.
    """

    def __init__(self, source: Source, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < ISA_LENGTH:
            raise ValueError(f"chunk_size must be at least {ISA_LENGTH}")
        self._chunks = _chunks(source, chunk_size)
        self._decoder = codecs.getincrementaldecoder("utf-8")("x12-latin1")
        self._eof = False
        self.count = 0
        self.delimiters: Delimiters | None = None
        self._batches: list[tuple[list[list[str]], int, dict[int, int]]] = []

    def locate(self, segment: list[str]) -> int:
        """The ordinal of ``segment``, which must come from the last two batches read."""
        for batch, base, index in reversed(self._batches):
            if not index:
                index.update((id(item), number) for number, item in enumerate(batch, start=base + 1))
            found = index.get(id(segment))
            if found is not None and batch[found - base - 1] is segment:
                return found
        raise LookupError("segment is not from the current batch")

    def _emit(self, batch: list[list[str]]) -> list[list[str]]:
        self._batches = [*self._batches[-1:], (batch, self.count, {})]
        self.count += len(batch)
        return batch

    def _more(self) -> str:
        """The next decoded chunk, ``""`` at the end of the input."""
        if self._eof:
            return ""
        for block in self._chunks:
            text = self._decoder.decode(block)
            if text:
                return text
        self._eof = True
        return self._decoder.decode(b"", final=True)

    def _start_interchange(self, text: str) -> str:
        """Skip white space to the next ISA, read its delimiters; ``""`` when the input has ended."""
        while True:
            text = text.lstrip().lstrip("\ufeff").lstrip()
            if text or self._eof:
                break
            text = self._more()
        if not text:
            return ""
        while len(text) < _SCAN_LIMIT and not self._eof:
            text += self._more()
        if not text.startswith("ISA"):
            where = "after the last IEA" if self.count else "at the start of the input"
            raise _error(self.count + 1, "ISA", f"expected an ISA segment {where}; this is not X12 here")
        self.delimiters, _ = parse_isa_delimiters(text, self.count + 1)
        return text

    def __iter__(self) -> Iterator[list[str]]:
        text = self._more()
        if not text.lstrip().lstrip("\ufeff").lstrip():
            raise _error(1, "ISA", "input is empty")
        while True:
            text = self._start_interchange(text)
            if not text:
                return
            assert self.delimiters is not None
            terminator, element = self.delimiters.segment, self.delimiters.element
            while True:
                parts, text, ended = _split(text, terminator, element)
                if parts:
                    yield from self._emit([part.split(element) for part in parts])
                if ended:
                    break
                more = self._more()
                if len(text) > MAX_SEGMENT:
                    message = "no segment terminator within 1 MiB: not the ISA's terminator?"
                    raise _error(self.count + 1, text.lstrip()[:3], message)
                if not more:
                    tail = text.strip()
                    if tail:  # the last segment lost its terminator (or the file was cut)
                        yield from self._emit([tail.split(element)])
                    return
                text += more


def _split(text: str, terminator: str, element: str) -> tuple[list[str], str, bool]:
    """Complete segments of ``text``, the text left over, and whether an IEA ended the interchange.

    Fast path (no IEA here, terminator not CR/LF): drop CR/LF wholesale, one ``split``, and a
    per-segment strip only when a terminator is followed by white space or another terminator.
    """
    iea = "IEA" + element
    if iea not in text and terminator not in "\r\n":
        if "\n" in text:
            text = text.replace("\n", "")
        if "\r" in text:
            text = text.replace("\r", "")
        parts = text.split(terminator)
        tail = parts.pop()
        if (
            text[:1] in (" ", "\t", terminator)
            or terminator + terminator in text
            or terminator + " " in text
            or terminator + "\t" in text
        ):
            parts = [part for part in (raw.lstrip() for raw in parts) if part]
        return parts, tail, False
    raw_parts = text.split(terminator)
    tail = raw_parts.pop()
    parts = []
    # Line breaks go one segment at a time here: what follows the IEA may be an interchange whose
    # terminator is a line break. Stripping them only at the ends made a file wrapped mid-segment
    # read differently depending on whether the wrap fell in the chunk holding the IEA.
    breaks_are_data = terminator in "\r\n"
    for number, raw in enumerate(raw_parts):
        part = raw.rstrip("\r\n") if breaks_are_data else raw.replace("\n", "").replace("\r", "")
        part = part.lstrip()
        if part:
            parts.append(part)
            if part == "IEA" or part.startswith(iea):
                return parts, terminator.join([*raw_parts[number + 1 :], tail]), True
    return parts, tail, False
