import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical import npi_is_valid


def _check_digit(nine: str) -> str:
    for digit in "0123456789":
        if npi_is_valid(nine + digit):
            return digit
    raise AssertionError("no check digit fits")


@pytest.mark.parametrize("npi", ["1234567893", "1245319599", "1003000126"])
def test_known_valid_npis(npi: str) -> None:
    assert npi_is_valid(npi)


@pytest.mark.parametrize("npi", ["1234567890", "123456789", "12345678931", "abcdefghij", ""])
def test_invalid_npis(npi: str) -> None:
    assert not npi_is_valid(npi)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_exactly_one_check_digit_fits(nine: str) -> None:
    digit = _check_digit(nine)
    assert [d for d in "0123456789" if npi_is_valid(nine + d)] == [digit]
