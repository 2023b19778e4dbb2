"""Our PELT finds ruptures' optimum: the same breakpoints on random, shifted, tied, flat series."""

from __future__ import annotations

import math

import numpy as np
import ruptures as rpt

from app.baselines.changepoints import pelt_l2


def test_pelt_l2_agrees_with_ruptures_on_every_kind_of_series() -> None:
    rng = np.random.default_rng(20261202)
    for trial in range(200):
        n = int(rng.integers(6, 150))
        values = rng.normal(10, 1, n)
        if trial % 3 == 0:
            values[n // 2 :] += rng.uniform(0, 5)
        if trial % 5 == 0:
            values = np.round(values)
        if trial % 7 == 0:
            values = np.full(n, 5.0)
        penalty = 3 * math.log(n) * max(float(np.std(values)), 0.05) ** 2

        ours = pelt_l2(values, penalty=penalty, min_size=3)
        theirs = rpt.Pelt(model="l2", min_size=3, jump=1).fit(values).predict(pen=penalty)

        assert ours == theirs, (trial, n)


def test_a_clear_shift_is_found_where_it_is() -> None:
    values = np.array([10.0] * 20 + [15.0] * 20) + np.tile([0.1, -0.1], 20)

    assert pelt_l2(values, penalty=3 * math.log(40), min_size=3) == [20, 40]
