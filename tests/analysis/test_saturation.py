"""Knee detection on per-second samples of runs whose load varied."""

from __future__ import annotations

import numpy as np

from app.analysis.saturation import Second, detect


def ramp(knee_vus: int, *, top: int = 40, error_from: int | None = None) -> list[Second]:
    """A closed-model ramp 1..top VUs, 3 s per level: flat 10 ms p95 up to the knee, then
    queueing (latency grows with VUs, throughput stays where it was)."""
    rng = np.random.default_rng(knee_vus)
    seconds = []
    for vus in range(1, top + 1):
        for _ in range(3):
            p95 = 10.0 if vus < knee_vus else 10.0 * vus / knee_vus * 2.2
            p95 *= float(rng.lognormal(0, 0.05))
            rps = vus * 100 if vus < knee_vus else knee_vus * 100
            failures = int(rps * 0.05) if error_from and vus >= error_from else 0
            seconds.append(Second(vus=vus, requests=rps, failures=failures, p95_ms=p95))
    return seconds


def test_the_knee_of_a_closed_ramp_is_where_p95_breaks_away_and_throughput_stops() -> None:
    knee = detect(ramp(20), open_model=False, p95_target_ms=50.0)

    assert knee is not None
    assert knee.load_metric == "vus"
    assert knee.knee_load == 20
    assert knee.knee_rps == 2000
    assert knee.p95_before_knee_ms is not None
    assert knee.p95_before_knee_ms < 11
    assert knee.throughput_ceiling
    # The SLO (p95 < 50 ms) holds up to about 22 VUs, where throughput is already flat.
    assert knee.max_sustainable_rps == 2000
    assert knee.error_knee_load is None


def test_errors_that_start_at_a_load_level_are_located() -> None:
    knee = detect(ramp(30, error_from=25), open_model=False)

    assert knee is not None
    assert knee.error_knee_load == 25


def test_a_system_that_never_saturates_has_no_knee() -> None:
    rng = np.random.default_rng(3)
    seconds = [
        Second(vus=v, requests=v * 100, failures=0, p95_ms=10 * float(rng.lognormal(0, 0.1)))
        for v in range(1, 41)
        for _ in range(3)
    ]

    knee = detect(seconds, open_model=False)

    assert knee is not None
    assert (knee.knee_load, knee.throughput_ceiling) == (None, False)
    assert knee.max_sustainable_rps == 4000


def test_a_blip_at_one_level_is_not_a_knee() -> None:
    seconds = ramp(100, top=30)  # no knee within the ramp
    seconds[40] = Second(vus=seconds[40].vus, requests=100, failures=0, p95_ms=500.0)

    knee = detect(seconds, open_model=False)

    assert knee is not None
    assert knee.knee_load is None


def test_a_steady_load_is_not_analysed_for_a_knee() -> None:
    steady = [Second(vus=10, requests=1000, failures=0, p95_ms=12.0) for _ in range(60)]

    assert detect(steady, open_model=False) is None


def test_an_open_model_is_binned_by_throughput() -> None:
    seconds = [
        Second(vus=20, requests=rate, failures=0, p95_ms=5.0 if rate < 800 else 60.0)
        for rate in range(100, 1300, 25)
    ]

    knee = detect(seconds, open_model=True, p95_target_ms=20.0)

    assert knee is not None
    assert knee.load_metric == "rps"
    assert knee.knee_load is not None
    assert 750 <= knee.knee_load <= 900
    assert knee.max_sustainable_rps is not None
    assert knee.max_sustainable_rps < 800
