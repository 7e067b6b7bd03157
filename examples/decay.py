"""Twelve noisy-free samples of y = a exp(-k t) + c, with a = 2.5, k = 0.7, c = 0.3.

For DFO-LS the function returns the residuals (model - data); rsopt's form,
(sum of squares, residuals), is accepted too.
"""

import math

T = [0.5 * i for i in range(12)]
Y = [2.5 * math.exp(-0.7 * t) + 0.3 for t in T]


def decay_residuals(a, k, c):
    return [a * math.exp(-k * t) + c - y for t, y in zip(T, Y)]


def decay_misfit(a, k, c):
    """The sum of squared residuals, one float: what a scan of the three parameters evaluates."""
    return sum(r * r for r in decay_residuals(a, k, c))
