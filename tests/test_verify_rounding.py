"""The certain (sure) load is a lower bound: its float arithmetic may only round toward zero.

``model.verify.thinning`` computes the load sure to reach each service in floats, stepping any
inexact sum or product down; a `violated` capacity verdict rests on that bound, so a single
step rounded up could turn a true `unknown` into a false `violated`.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from faultmesh.model.verify.thinning import _below, _plus, _times

nonnegative = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)
tiny_or_huge = st.one_of(nonnegative, st.floats(min_value=0.0, max_value=1e-300),
                         st.sampled_from([0.0, 1.0, 0.1, 0.2, 0.3, 1e308, 5e-324]))


@settings(max_examples=3000, deadline=None)
@given(tiny_or_huge, tiny_or_huge)
def test_products_and_sums_never_round_up(a: float, b: float) -> None:
    exact_product = Fraction(a) * Fraction(b)
    exact_sum = Fraction(a) + Fraction(b)
    product, total = _times(a, b), _plus(a, b)
    assert Fraction(product) <= exact_product
    assert Fraction(total) <= exact_sum
    # ... and they stay close (a product that underflows may fall to zero: still below).
    assert product >= 0.0 and total >= 0.0
    if Fraction(1e-290) < exact_product < Fraction(1e300):
        assert Fraction(product) >= exact_product * Fraction(1 - 2**-50)
    if exact_sum < Fraction(1e300):
        assert Fraction(total) >= exact_sum * Fraction(1 - 2**-50)


@settings(max_examples=2000, deadline=None)
@given(st.fractions(min_value=0, max_value=10**400, max_denominator=10**30))
def test_a_fraction_is_read_from_below(value: Fraction) -> None:
    assert Fraction(_below(value)) <= value
    if value and value < Fraction(1e300):
        assert Fraction(_below(value)) >= value * Fraction(1 - 2**-50)


def test_exact_values_stay_exact() -> None:
    # 100/s x 10 ms is exactly one worker: an exact boundary must not be stepped down.
    assert _times(100.0, 0.5) == 50.0
    assert _plus(0.5, 0.25) == 0.75
    assert _below(Fraction(3, 4)) == 0.75
    assert _below(Fraction(1, 10)) < 0.1  # 1/10 has no float: the one below it
