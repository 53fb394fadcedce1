"""How the generated reports (zoo results, cards, benchmark) write tables and numbers, so that they agree."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured table, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def percent(fraction: float) -> str:
    return f"{100 * fraction:.2f}%"


def seconds(value: float) -> str:
    return f"{value:,.1f} s" if value < 120 else f"{value:,.0f} s ({value / 60:,.1f} min)"


def threads(count: int) -> str:
    return f"{count} thread{'' if count == 1 else 's'}"


def tokens(count: int) -> str:
    return f"{count:,} tokens" if count < 1e6 else f"{count / 1e6:,.2f}M tokens"


def mean_and_spread(values: Iterable[float], scale: float = 100, digits: int = 2, unit: str = "%") -> str:
    """Mean ± sample standard deviation (the mean alone for one value), in percent unless told otherwise."""
    values = list(values)
    spread = f" ± {scale * statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{scale * statistics.mean(values):.{digits}f}{spread}{unit}"


def signed_interval(entry: dict, scale: float, digits: int, unit: str = "") -> str:
    """A difference with its interval, `entry` holding "mean", "low" and "high": "+1.20 pp [+0.40, +2.00]"."""
    return (
        f"{scale * entry['mean']:+.{digits}f}{unit} [{scale * entry['low']:+.{digits}f}, "
        f"{scale * entry['high']:+.{digits}f}]"
    )


def share_interval(entry: dict) -> str:
    """A share of a reference's accuracy with its interval, `entry` holding "mean", "low" and "high":
    "98.6% [97.23, 99.7]"; the lower bound to two decimals, since a verdict such as "keeps 97%" is read from it."""
    return f"{100 * entry['mean']:.1f}% [{100 * entry['low']:.2f}, {100 * entry['high']:.1f}]"


def p_value(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def ratio_and_range(values: list[float]) -> str:
    """Ratios from repeated measurements: "0.79× (0.76–0.82)", their mean and range ("–" for none)."""
    if not values:
        return "–"
    spread = f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.2f}×{spread}"


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def generated_block(text: str, start: str, end: str) -> str:
    """The block of a document between two marker lines (a README's generated section), markers excluded."""
    return text[text.index(start) + len(start) : text.index(end)].strip("\n")


def with_generated_block(text: str, start: str, end: str, block: str) -> str:
    """The document with the block between the markers replaced."""
    return text[: text.index(start) + len(start)] + f"\n{block}\n" + text[text.index(end) :]
