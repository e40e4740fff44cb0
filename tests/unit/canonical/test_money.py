from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical import Amount, Money, decode, encode

cents = st.integers(min_value=-(10**14) + 1, max_value=10**14 - 1)


class Box(msgspec.Struct):
    m: Money


@given(cents)
def test_money_round_trips_through_json_exactly(value: int) -> None:
    money = Money(Decimal(value).scaleb(-2))
    encoded = encode(Box(m=money))
    assert decode(encoded, Box).m == money
    assert str(decode(encoded, Box).m).count(".") == 1
    assert len(str(money).split(".")[1]) == 2


@given(st.lists(cents, min_size=1, max_size=50))
def test_money_sums_stay_exact(values: list[int]) -> None:
    amounts = [Money(Decimal(v).scaleb(-2)) for v in values]
    assert sum(amounts, Decimal(0)) == Decimal(sum(values)).scaleb(-2)


@pytest.mark.parametrize("raw", ["12.5", "12", "0.01", "-3.10"])
def test_money_normalises_to_two_places(raw: str) -> None:
    assert str(Money.from_wire(raw)) == f"{Decimal(raw):.2f}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (12.5, "not a number"),
        (12, "not a number"),
        ("12.345", "at most two places"),
        ("NaN", "decimal string"),
        ("1e3", "decimal string"),
        ("1234567890123.00", "decimal string"),
    ],
)
def test_money_rejects_floats_and_imprecise_values(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Money.from_wire(raw)


def test_amount_rejects_negative() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Amount.from_wire("-1.00")
    with pytest.raises(ValueError, match="must not be negative"):
        Amount("-1")


def test_money_refuses_python_float() -> None:
    with pytest.raises(TypeError):
        Money(0.1)


@pytest.mark.parametrize("raw", ["-0", "-0.0", "-0.00", "-000.00"])
def test_money_is_never_negative_zero(raw: str) -> None:
    for value in (Money.from_wire(raw), Money(raw), Money(Decimal(raw)), Amount(raw)):
        assert (str(value), value.is_signed()) == ("0.00", False)
    assert encode(Box(m=Money.from_wire(raw))) == b'{"m":"0.00"}'


wire_amounts = st.from_regex(r"\A-?[0-9]{1,12}(\.[0-9]{1,2})?\Z")


@given(wire_amounts)
def test_reading_the_wire_equals_the_checked_constructor(raw: str) -> None:
    """``from_wire`` writes out the two places itself after its pattern: the same value, places,
    sign and type as the constructor's checks give, for every string the pattern admits."""
    for kind in (Money, Amount):
        if kind is Amount and raw.startswith("-"):
            continue
        read, built = kind.from_wire(raw), kind(raw)
        assert (type(read), str(read), read.as_tuple()) == (type(built), str(built), built.as_tuple())
