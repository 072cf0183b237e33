"""The median of a few integers, as :func:`statistics.median` gives it.

Here rather than from :mod:`statistics`, whose import (with :mod:`fractions`, :mod:`decimal` and
:mod:`random`) is ~4 ms of every ``kaflow analyze`` for three calls on short lists.
"""

from __future__ import annotations

from collections.abc import Iterable


def median(values: Iterable[int]) -> float:
    """The middle value, or the mean of the two middle ones (a float then, as in statistics)."""
    data = sorted(values)
    n = len(data)
    if n == 0:
        raise ValueError("no median of no values")
    if n % 2 == 1:
        return data[n // 2]
    return (data[n // 2 - 1] + data[n // 2]) / 2
