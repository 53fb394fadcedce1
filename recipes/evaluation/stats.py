"""Confidence statistics for the study's tables.

- `paired_difference`: a model's scores minus the reference model's over matched units (the pretraining seed: seed s of
  a variant is paired with seed s of the reference, which saw the same data order and held-out masks), with a Student-t
  interval over the differences; `excludes_zero` says whether the data settle the sign. `mean_interval` is that
  interval for any sample (a ratio per seed, say).
- `independent_difference`: the same for two groups that share no unit (a pretrained model against the same
  architecture fine-tuned from random weights, which no pretraining seed matches), with Welch's interval.
- `classification_scores`: accuracy and macro-F1 (the local `evaluate` modules the fine-tuning recipe uses) and whether
  the model predicted one class only, the failure a high accuracy on an unbalanced task hides.
- `bootstrap_interval`: a difference of accuracies with the test rows' uncertainty too (seeds and rows resampled);
  `holm`: Holm's step-down adjustment of a family of p-values.
"""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import evaluate
import numpy as np
from scipy.stats import t as student_t
from scipy.stats import ttest_ind

from recipes.evaluation.held_out import METRICS_DIR

CLASSIFICATION_METRICS = ("accuracy", "f1")  # accuracy (the papers' metric) and macro-F1


@dataclass(frozen=True)
class Difference:
    """A difference of means and the half-width of its interval at `confidence`; `units` are the units a paired
    difference matched (none for two independent groups)."""

    mean: float
    half_width: float
    confidence: float
    units: tuple

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies on one side of zero. One of width 0 (values without spread) excludes nothing: it
        measures no uncertainty, so it supports no claim."""
        return not without_spread(self.low, self.high) and not self.low <= 0.0 <= self.high

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        """'+2.3 ± 1.1' (in points when scores are fractions and scale is 100)."""
        return f"{scale * self.mean:+.{digits}f} ± {scale * self.half_width:.{digits}f}"


def paired_difference(
    scores: Mapping[Hashable, float], reference: Mapping[Hashable, float], confidence: float = 0.95
) -> Difference:
    """`scores[u] − reference[u]` over the units both have, with the Student-t interval of their mean:
    mean ± t_{(1+confidence)/2, n−1} · sd / √n (sd with n − 1 degrees of freedom)."""
    units = tuple(sorted(set(scores) & set(reference)))
    if len(units) < 2:
        raise ValueError(
            f"A paired interval needs at least 2 matched units; matched {list(units)} "
            f"(scores: {sorted(scores)}, reference: {sorted(reference)})."
        )
    mean, half_width = mean_interval([scores[unit] - reference[unit] for unit in units], confidence)
    return Difference(mean, half_width, confidence, units)


def independent_difference(scores: Sequence[float], reference: Sequence[float], confidence: float = 0.95) -> Difference:
    """mean(scores) − mean(reference) for two independent groups, with Welch's interval (scipy's `ttest_ind` with
    unequal variances); two groups without spread have an interval of width 0, which excludes nothing."""
    if min(len(scores), len(reference)) < 2:
        raise ValueError(f"Welch's interval needs at least 2 values a group; got {len(scores)} and {len(reference)}.")
    check_confidence(confidence)
    mean = statistics.fmean(scores) - statistics.fmean(reference)
    if statistics.variance(scores) == statistics.variance(reference) == 0:
        return Difference(mean, 0.0, confidence, ())
    interval = ttest_ind(scores, reference, equal_var=False).confidence_interval(confidence)
    return Difference(mean, float(interval.high) - mean, confidence, ())


def without_spread(low: float, high: float) -> bool:
    """Whether an interval has width 0 up to rounding (differences of equal scores differ by ~1e-17)."""
    return math.isclose(low, high, rel_tol=0.0, abs_tol=1e-12)


def check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}.")


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """The mean of `values` and the half-width of its Student-t interval: t_{(1+confidence)/2, n−1} · sd / √n."""
    if len(values) < 2:
        raise ValueError(f"An interval needs at least 2 values; got {len(values)}.")
    check_confidence(confidence)
    quantile = student_t.ppf((1 + confidence) / 2, df=len(values) - 1)
    return statistics.fmean(values), quantile * statistics.stdev(values) / math.sqrt(len(values))


def classification_metrics():
    """Accuracy and macro-F1 as one `evaluate` metric, from the copies in recipes/metrics (no Hub at run time)."""
    return evaluate.combine([str(METRICS_DIR / name) for name in CLASSIFICATION_METRICS])


def one_class(predictions: Sequence[int]) -> bool:
    """Whether every prediction is the same class."""
    return len(set(predictions)) == 1


def classification_scores(predictions: Sequence[int], references: Sequence[int]) -> dict:
    """Accuracy, macro-F1 and the one-class flag of a model's predictions."""
    if len(predictions) != len(references) or not references:
        raise ValueError(f"Need one prediction per reference; got {len(predictions)} for {len(references)}.")
    return {
        **classification_metrics().compute(predictions=predictions, references=references),
        "one_class": one_class(predictions),
    }


def bootstrap_interval(
    correct: np.ndarray,
    reference: np.ndarray,
    draws: int = 10_000,
    seed: int = 0,
    statistic: Callable[[float, float], float] = operator.sub,
) -> tuple[float, float]:
    """95% percentile interval of `statistic(accuracy, reference accuracy)` (their difference; `operator.truediv`
    for a share of the reference), resampling seeds and test rows together: `correct` and `reference` are
    (seeds × rows) arrays of 0/1, paired by seed and row."""
    generator = np.random.default_rng(seed)
    seeds, rows = correct.shape
    values = np.empty(draws)
    for draw in range(draws):
        units = generator.integers(seeds, size=seeds)
        sample = generator.integers(rows, size=rows)
        values[draw] = statistic(correct[units][:, sample].mean(), reference[units][:, sample].mean())
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values."""
    ordered = sorted(p_values, key=p_values.get)
    adjusted, running = {}, 0.0
    for rank, name in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p_values[name]))
        adjusted[name] = running
    return adjusted
