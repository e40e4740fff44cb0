"""Ids: prefix, 26 Crockford base32 characters, unique, ordered by their millisecond."""

from __future__ import annotations

import re
import time
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from gateway.ids import _CHARACTER_OF_BYTE, _millisecond_text, new_id, new_id_off_loop

_ID = re.compile(r"txn_[0-9abcdefghjkmnpqrstvwxyz]{26}")  # Crockford: no i, l, o, u


def test_ids_have_the_shape_and_never_repeat_across_pool_refills() -> None:
    ids = [new_id("txn") for _ in range(5000)]  # ~20 refills of the randomness pool
    assert all(_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i[14:] for i in ids}) == len(ids)  # the random parts alone are distinct too


def test_ids_from_later_milliseconds_sort_after_earlier_ones() -> None:
    first = new_id("txn")
    time.sleep(0.002)
    second = new_id("txn")
    assert first[:14] < second[:14]
    assert sorted([second, first]) == [first, second]


def _digits(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        out.append("0123456789abcdefghjkmnpqrstvwxyz"[digit])
    return "".join(reversed(out))


@given(st.integers(min_value=0, max_value=2**50 - 1))
def test_the_millisecond_is_its_plain_base32_digits(ms: int) -> None:
    assert _millisecond_text(ms) == _digits(ms, 10)


def test_a_millisecond_beyond_50_bits_keeps_its_low_50_bits() -> None:
    assert _millisecond_text(2**50 + 5) == _digits(5, 10)


def test_every_random_character_is_equally_likely() -> None:
    # Each of the 32 characters stands for exactly 8 of the 256 byte values: 5 uniform bits each.
    assert Counter(_CHARACTER_OF_BYTE) == {ord(c): 8 for c in "0123456789abcdefghjkmnpqrstvwxyz"}


def test_an_id_made_off_the_loop_has_the_same_shape_and_order() -> None:
    before = new_id("txn")
    time.sleep(0.002)
    made = [new_id_off_loop("txn") for _ in range(200)]
    assert all(_ID.fullmatch(i) for i in made)
    assert len(set(made)) == len(made)
    assert all(before[:14] < i[:14] for i in made)
