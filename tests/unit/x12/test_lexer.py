"""The lexer: delimiters from each ISA, white space and BOM tolerance, chunking, positions."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.clearinghouse.x12._lexer import Lexer, parse_isa_delimiters
from connectors.clearinghouse.x12._model import Delimiters, X12Error

ISA_FIELDS = [
    "ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SENDER".ljust(15), "ZZ", "RECEIVER".ljust(15),
    "240101", "1200", "^", "00501", "000000001", "0", "T", ":",
]  # fmt: skip


def isa(element: str = "*", repetition: str = "^", component: str = ":", terminator: str = "~") -> str:
    fields = [*ISA_FIELDS[:11], repetition, *ISA_FIELDS[12:16], component]
    return element.join(fields) + terminator


def body(element: str = "*", component: str = ":", terminator: str = "~") -> str:
    """GS..IEA of a one-set interchange, written with the given delimiters."""
    segments = [
        "GS*HP*SENDER*RECEIVER*20240101*1200*1*X*005010X221A1",
        "ST*835*0001",
        "SVC*HC:99213*10*10",
        "SE*3*0001",
        "GE*1*1",
        "IEA*1*000000001",
    ]
    table = str.maketrans({"*": element, ":": component})
    return "".join(segment.translate(table) + terminator for segment in segments)


def segments(data: bytes, chunk_size: int = 65536) -> list[list[str]]:
    return list(Lexer(data, chunk_size))


EXPECTED_IDS = ["ISA", "GS", "ST", "SVC", "SE", "GE", "IEA"]


def test_isa_declares_every_delimiter() -> None:
    text = isa("|", "!", ">", "\n")
    delimiters, fields = parse_isa_delimiters(text)
    assert delimiters == Delimiters(element="|", repetition="!", component=">", segment="\n")
    assert len(text) == 106  # fixed length, terminator included
    assert fields[13] == "000000001"
    assert fields[16] == ">"


def test_trimmed_isa_padding_is_still_read() -> None:
    text = "ISA*00**00**ZZ*S*ZZ*R*240101*1200*^*00501*000000001*0*T*:~GS*HP"
    delimiters, fields = parse_isa_delimiters(text)
    assert (delimiters.element, delimiters.component, delimiters.segment) == ("*", ":", "~")
    assert fields[6] == "S"


@pytest.mark.parametrize(
    ("element", "repetition", "component", "terminator"),
    [("*", "^", ":", "~"), ("|", "^", ">", "~"), ("^", "{", "\\", "'"), ("*", "^", ">", "\n"), ("~", "^", "<", "!")],
)
def test_segments_split_on_the_declared_delimiters(
    element: str, repetition: str, component: str, terminator: str
) -> None:
    data = (isa(element, repetition, component, terminator) + body(element, component, terminator)).encode()
    found = segments(data)
    assert [s[0] for s in found] == EXPECTED_IDS
    assert found[3] == ["SVC", f"HC{component}99213", "10", "10"]
    assert found[0][16] == component


def test_bom_crlf_blank_lines_and_indentation_are_ignored() -> None:
    text = isa() + "\r\n\r\n" + body().replace("~", "~\r\n  \r\n\t")
    found = segments(b"\xef\xbb\xbf  \r\n" + text.encode())
    assert [s[0] for s in found] == EXPECTED_IDS
    assert found[3] == ["SVC", "HC:99213", "10", "10"]


def test_crlf_around_a_newline_terminator() -> None:
    text = isa(terminator="\n") + body(terminator="\r\n")
    found = segments(text.encode())
    assert [s[0] for s in found] == EXPECTED_IDS
    assert found[-1] == ["IEA", "1", "000000001"]


def test_last_segment_may_lack_its_terminator() -> None:
    found = segments((isa() + body()).rstrip("~").encode())
    assert found[-1] == ["IEA", "1", "000000001"]


def test_several_interchanges_each_with_its_own_delimiters() -> None:
    first = isa() + body()
    second = isa("|", "^", ">", "\n") + body("|", ">", "\n")
    lexer = Lexer((first + "\n" + second).encode())
    found = list(lexer)
    assert [s[0] for s in found] == EXPECTED_IDS * 2
    assert found[3] == ["SVC", "HC:99213", "10", "10"]
    assert found[10] == ["SVC", "HC>99213", "10", "10"]
    assert lexer.delimiters == Delimiters(element="|", repetition="^", component=">", segment="\n")


@settings(max_examples=40, deadline=None)
@given(chunk_size=st.integers(min_value=106, max_value=400))
def test_chunk_boundaries_change_nothing(chunk_size: int) -> None:
    text = isa() + "\n" + body().replace("~", "~\r\n") + isa("|", "^", ">", "~") + body("|", ">", "~")
    data = ("\ufeff" + text).encode()
    lexer = Lexer(data, chunk_size)
    found = [(lexer.locate(segment), segment) for segment in lexer]
    assert found == [(number, segment) for number, segment in enumerate(segments(data), start=1)]
    assert lexer.count == 14


def test_multibyte_characters_split_across_chunks() -> None:
    name = "JOSÉ ÑÚÑEZ"
    text = isa() + body().replace("SVC*HC:99213", f"SVC*{name}")
    data = text.encode()
    for chunk_size in range(106, 140):
        assert segments(data, chunk_size)[3][1] == name


def test_bytes_that_are_not_utf8_are_read_as_latin1() -> None:
    data = (isa() + body().replace("SVC*HC:99213", "SVC*JOS\xc9")).encode("latin-1")
    assert segments(data)[3][1] == "JOSÉ"


def test_a_binary_file_object_is_read_in_chunks() -> None:
    data = (isa() + body()).encode()
    stream = io.BytesIO(data)
    assert list(Lexer(stream, 128)) == segments(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"  \r\n\xef\xbb\xbf ", "empty"),
        (b"<?xml version='1.0'?><claims/>", "not X12"),
        (b"UNA:+.? 'UNB+UNOC:3+SENDER+RECEIVER'", "not X12"),
        (b"ISA*00*", "fewer than 16"),
        (b"ISA000", "element separator"),
    ],
)
def test_input_that_is_not_x12_is_refused_at_position_1(data: bytes, message: str) -> None:
    with pytest.raises(X12Error, match=message) as caught:
        segments(data)
    assert caught.value.issue.position == 1
    assert caught.value.issue.segment_id == "ISA"


def test_trailing_garbage_after_iea_names_its_position() -> None:
    data = (isa() + body() + "\nthis is not an interchange").encode()
    with pytest.raises(X12Error, match="after the last IEA") as caught:
        segments(data)
    assert caught.value.issue.position == 8


def test_a_terminator_that_never_comes_is_refused() -> None:
    data = (isa() + "GS*" + "A" * (2 * 1024 * 1024)).encode()
    with pytest.raises(X12Error, match="no segment terminator") as caught:
        segments(data)
    assert caught.value.issue.position == 2


def test_delimiters_must_be_distinct_and_not_data() -> None:
    with pytest.raises(X12Error, match="ISA16"):
        parse_isa_delimiters(isa(component="A"))
    with pytest.raises(X12Error, match="terminator"):
        parse_isa_delimiters(isa(terminator="*"))


def test_line_breaks_inside_a_segment_are_dropped_wherever_the_chunks_fall() -> None:
    """A file wrapped at a fixed width breaks segments anywhere, the last chunk (the one holding the
    IEA) included; before, a wrap in that chunk left the line break inside the element."""
    wrapped = body().replace("SVC*HC:99213*10*10", "SVC*HC:992\r\n13*1\n0*10").replace("IEA*1", "IEA*\r\n1")
    data = (isa() + wrapped).encode()
    for chunk_size in range(106, len(data) + 1):
        found = segments(data, chunk_size)
        assert found[3] == ["SVC", "HC:99213", "10", "10"], chunk_size
        assert found[-1] == ["IEA", "1", "000000001"], chunk_size


@pytest.mark.parametrize("separator", ["\x1d", "\x1f", "\x07"])
def test_a_control_character_may_separate_elements(separator: str) -> None:
    data = (isa(element=separator, component="\x1f" if separator != "\x1f" else "\x1e", terminator="\x1c")
            + body(separator, "\x1f" if separator != "\x1f" else "\x1e", "\x1c")).encode()  # fmt: skip
    found = segments(data)
    assert [s[0] for s in found] == EXPECTED_IDS
    assert found[3][2:] == ["10", "10"]


@pytest.mark.parametrize("blank", [" ", "\t", "\r", "\n"])
def test_a_blank_is_never_an_element_or_component_separator(blank: str) -> None:
    with pytest.raises(X12Error, match="element separator"):
        parse_isa_delimiters(isa(element=blank))
    with pytest.raises(X12Error, match="ISA16"):
        parse_isa_delimiters(isa(component=blank))
