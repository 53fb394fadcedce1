"""Paired differences with Student-t intervals, independent ones with Welch's, and accuracy / macro-F1 / one-class flags, against values worked out
by hand."""

from __future__ import annotations

import operator

import numpy as np
import pytest

from recipes.evaluation.stats import (
    bootstrap_interval,
    classification_scores,
    independent_difference,
    one_class,
    paired_difference,
)

T_975_2DF = 4.302653  # Student-t 97.5% quantile, 2 degrees of freedom (statistical tables)


def test_interval_of_three_paired_differences():
    # differences 1, 2, 3 (seed 4 has no reference run and is left out): mean 2, sd 1, half-width t·1/√3
    difference = paired_difference({1: 11.0, 2: 12.0, 3: 13.0, 4: 99.0}, {1: 10.0, 2: 10.0, 3: 10.0})
    assert difference.units == (1, 2, 3)
    assert difference.mean == pytest.approx(2.0)
    assert difference.half_width == pytest.approx(T_975_2DF / 3**0.5, rel=1e-6)  # 2.4841
    assert (difference.low, difference.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), rel=1e-6)
    assert not difference.excludes_zero
    assert difference.format(scale=1, digits=2) == "+2.00 ± 2.48"


def test_an_interval_above_zero_and_one_below():
    above = paired_difference({"a": 0.32, "b": 0.33, "c": 0.34}, {"a": 0.30, "b": 0.30, "c": 0.30})
    # differences 0.02, 0.03, 0.04: mean 0.03, sd 0.01, half-width 0.024841
    assert above.half_width == pytest.approx(0.024841377, rel=1e-6)
    assert above.excludes_zero and above.low > 0
    assert above.format() == "+3.0 ± 2.5"
    below = paired_difference({1: 0.1, 2: 0.1}, {1: 0.2, 2: 0.3})
    # differences −0.1, −0.2: mean −0.15, sd 0.0707, t(0.975, 1 df) = 12.7062: half-width 0.635310
    assert below.half_width == pytest.approx(12.706205 * 0.0707107 / 2**0.5, rel=1e-5)
    assert not below.excludes_zero and below.format() == "-15.0 ± 63.5"


def test_identical_differences_have_a_zero_width_interval():
    difference = paired_difference({1: 0.5, 2: 0.6}, {1: 0.4, 2: 0.5})
    assert difference.mean == pytest.approx(0.1) and difference.half_width == pytest.approx(0.0, abs=1e-12)
    # an interval of width 0 measures no uncertainty: it excludes nothing, however far from zero its mean lies
    assert not difference.excludes_zero


def test_fewer_than_two_matched_units_is_refused():
    with pytest.raises(ValueError, match=r"at least 2 matched units; matched \[2\]"):
        paired_difference({1: 0.1, 2: 0.2}, {2: 0.3, 3: 0.4})
    with pytest.raises(ValueError, match="confidence"):
        paired_difference({1: 0.1, 2: 0.2}, {1: 0.3, 2: 0.4}, confidence=95)


def test_welch_interval_of_two_independent_groups():
    # means 2 and 4, variances 1 and 4: se² = 1/3 + 4/3 = 5/3; Welch–Satterthwaite df = (5/3)² / ((1/3)²/2 + (4/3)²/2)
    # = 50/17; t(0.975, 50/17 df) = 3.218759, so the half-width is 3.218759 · √(5/3) = 4.155400
    difference = independent_difference([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert difference.mean == pytest.approx(-2.0) and difference.half_width == pytest.approx(4.155400, rel=1e-6)
    assert not difference.excludes_zero and difference.units == ()
    # no unit is matched: the order of either group does not change the interval, as it would a paired one
    assert independent_difference([3.0, 1.0, 2.0], [6.0, 2.0, 4.0]) == difference
    assert paired_difference({1: 1.0, 2: 2.0, 3: 3.0}, {1: 2.0, 2: 4.0, 3: 6.0}).half_width != difference.half_width


def test_welch_interval_of_groups_without_spread_and_too_small_groups():
    difference = independent_difference([0.8, 0.8], [0.7, 0.7, 0.7])
    assert difference.mean == pytest.approx(0.1) and difference.half_width == 0.0 and not difference.excludes_zero
    with pytest.raises(ValueError, match="at least 2 values a group; got 1 and 3"):
        independent_difference([0.8], [0.7, 0.7, 0.7])


def test_one_class_and_macro_f1_beside_accuracy():
    references = [0, 0, 0, 1, 2]
    always_zero = classification_scores([0, 0, 0, 0, 0], references)
    # accuracy 3/5; F1 of class 0 = 2·3/(2·3+2) = 0.75, classes 1 and 2 score 0: macro-F1 0.25
    assert always_zero == pytest.approx({"accuracy": 0.6, "macro_f1": 0.25, "one_class": True})
    mixed = classification_scores([0, 0, 1, 1, 2], references)
    # class 0: 2TP, 1FN → 0.8; class 1: 1TP, 1FP → 2/3; class 2: 1TP → 1: mean 0.8222
    assert mixed == pytest.approx({"accuracy": 0.8, "macro_f1": (0.8 + 2 / 3 + 1) / 3, "one_class": False})
    assert one_class([3]) and not one_class([1, 2])
    with pytest.raises(ValueError, match="one prediction per reference"):
        classification_scores([0], references)


def test_bootstrap_interval_of_a_share_resamples_the_same_rows_for_both_models():
    """A model right on the reference's correct rows and on half of the others: its share of the reference's accuracy
    is 1 on rows both get right, and the interval of `truediv` covers the observed ratio and stays above 0."""
    generator = np.random.default_rng(1)
    reference = (generator.random((3, 400)) < 0.8).astype(float)
    correct = reference * (generator.random((3, 400)) < 0.9)
    low, high = bootstrap_interval(correct, reference, draws=2000, statistic=operator.truediv)
    assert 0 < low <= correct.mean() / reference.mean() <= high <= 1.0
    assert bootstrap_interval(reference, reference, draws=200, statistic=operator.truediv) == (1.0, 1.0)
