"""Checks of numeric settings that name the setting in their message.

The config dataclasses (``__post_init__``) and the functions that take the same values directly share
them, so a rule such as "an extent range is 0 <= lo <= hi" is written once. They raise ``ValueError``
(which :func:`~b2b_train.config.from_dict` turns into a :class:`~b2b_train.errors.ConfigError` naming the
config) unless the caller passes another ``error`` class.
"""

from __future__ import annotations

from typing import Mapping, Sequence


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def check_at_least(values: Mapping[str, float], minimum: float, error: type[Exception] = ValueError) -> None:
    """Every value in ``values`` (setting name -> value) is ``>= minimum``; one message names them all."""
    if any(v < minimum for v in values.values()):
        raise error(f"{_names(list(values))} must be >= {minimum:g}")


def check_fraction(name: str, value: float, error: type[Exception] = ValueError) -> None:
    """``value`` (a probability or share) is in [0, 1]."""
    if not 0 <= value <= 1:
        raise error(f"{name} must be in [0, 1]")


def check_range(
    name: str, lo_hi: Sequence[float], low: float = 0.0, high: float | None = None,
    error: type[Exception] = ValueError,
) -> tuple[float, float]:
    """``(lo, hi)`` as floats, checked ``low <= lo <= hi`` (and ``hi <= high`` when given)."""
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    if not (low <= lo <= hi and (high is None or hi <= high)):
        bounds = f"{low:g} <= lo <= hi" + ("" if high is None else f" <= {high:g}")
        raise error(f"{name} must be {bounds}, got {list(lo_hi)}")
    return lo, hi
