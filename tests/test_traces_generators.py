"""Synthetic traces against analytic facts: random waypoint, Gauss–Markov, exponential on/off churn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from traces.generators import (
    gauss_markov,
    gauss_markov_step,
    on_off_availability,
    random_waypoint,
    sample_times_s,
)

BOUNDS = (0.0, 0.0, 200.0, 100.0)


def test_sample_grid_covers_the_duration() -> None:
    assert sample_times_s(2.0, 10.0).tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert sample_times_s(3.0, 10.0).tolist() == [0.0, 3.0, 6.0, 9.0, 12.0]
    with pytest.raises(ValueError, match="must be > 0"):
        sample_times_s(0.0, 10.0)


def test_random_waypoint_stays_in_the_area_and_respects_the_speed_range() -> None:
    rng = np.random.default_rng(0)
    start = rng.uniform((0, 0), (200, 100), (20, 2))
    trace = random_waypoint(rng, start, BOUNDS, (1.0, 3.0), 5.0, 0.5, 600.0)
    assert trace.xy_m.shape == (1201, 20, 2)
    np.testing.assert_array_equal(trace.at(0.0), start)
    assert (trace.xy_m >= (0, 0)).all() and (trace.xy_m <= (200, 100)).all()
    speeds = np.linalg.norm(np.diff(trace.xy_m, axis=0), axis=-1) / 0.5
    assert speeds.max() <= 3.0 + 1e-9  # straight legs at v <= v_max; turns inside a sample only cut corners
    moving = speeds[speeds > 1e-9]
    assert np.quantile(moving, 0.5) >= 1.0  # whole samples on a leg move at v >= v_min


def test_random_waypoint_pauses_first_then_moves() -> None:
    rng = np.random.default_rng(1)
    trace = random_waypoint(rng, np.array([[50.0, 50.0]]), BOUNDS, (2.0, 2.0), 10.0, 1.0, 100.0)
    np.testing.assert_array_equal(trace.xy_m[:11, 0], np.full((11, 2), 50.0))  # Johnson & Maltz: pause at start
    assert np.linalg.norm(trace.xy_m[12, 0] - trace.xy_m[11, 0]) == pytest.approx(2.0)


def test_random_waypoint_is_deterministic_and_refuses_zero_speed() -> None:
    args = (np.zeros((3, 2)), BOUNDS, (1.0, 2.0), 0.0, 1.0, 50.0)
    a = random_waypoint(np.random.default_rng(5), *args).xy_m
    b = random_waypoint(np.random.default_rng(5), *args).xy_m
    assert a.tobytes() == b.tobytes()
    with pytest.raises(ValueError, match="0 < v_min"):
        random_waypoint(np.random.default_rng(5), np.zeros((1, 2)), BOUNDS, (0.0, 1.0), 0.0, 1.0, 5.0)


def test_gauss_markov_process_has_the_stationary_mean_variance_and_correlation() -> None:
    """x_n = αx + (1−α)μ + √(1−α²)w is stationary N(μ, σ²) with lag-1 correlation α (Liang & Haas 1999)."""
    rng = np.random.default_rng(2)
    alpha, mu, sigma, n_series, n_steps = 0.75, 1.5, 0.4, 400, 1000
    x = rng.normal(mu, sigma, n_series)
    series = np.empty((n_steps, n_series))
    for k in range(n_steps):
        series[k] = x
        x = gauss_markov_step(rng, x, alpha, mu, sigma)
    # standard error of the mean of an AR(1) series: σ·sqrt((1+α)/((1−α)·N))
    se = sigma * math.sqrt((1 + alpha) / ((1 - alpha) * series.size))
    assert abs(series.mean() - mu) < 5 * se
    assert series.var() == pytest.approx(sigma**2, rel=0.03)
    lag1 = np.mean((series[1:] - mu) * (series[:-1] - mu)) / sigma**2
    assert lag1 == pytest.approx(alpha, abs=0.02)


def test_gauss_markov_step_lengths_follow_the_speed_law() -> None:
    """Away from the borders, each sample step is |s|·Δt with s ~ N(s̄, σ_s²): the speed law is seen in positions."""
    rng = np.random.default_rng(3)
    big = (-1e7, -1e7, 1e7, 1e7)
    trace = gauss_markov(rng, np.zeros((200, 2)), big, 0.5, 2.0, 0.3, 0.2, 1.0, 400.0)
    speeds = np.linalg.norm(np.diff(trace.xy_m, axis=0), axis=-1)  # Δt = 1 s
    assert speeds.mean() == pytest.approx(2.0, abs=0.01)
    assert speeds.var() == pytest.approx(0.09, rel=0.05)


def test_gauss_markov_stays_in_the_area_and_alpha_one_is_a_straight_line() -> None:
    rng = np.random.default_rng(4)
    start = rng.uniform((0, 0), (200, 100), (10, 2))
    trace = gauss_markov(rng, start, BOUNDS, 0.8, 5.0, 1.0, 0.5, 1.0, 500.0)
    assert (trace.xy_m >= (0, 0)).all() and (trace.xy_m <= (200, 100)).all()
    straight = gauss_markov(np.random.default_rng(4), np.array([[100.0, 50.0]]), BOUNDS, 1.0, 2.0, 1.0, 1.0, 1.0, 10.0)
    steps = np.diff(straight.xy_m[:, 0], axis=0)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-12)  # α = 1: no randomness after t0
    with pytest.raises(ValueError, match="inside bounds"):
        gauss_markov(rng, np.array([[-5.0, 0.0]]), BOUNDS, 0.5, 1.0, 0.1, 0.1, 1.0, 10.0)


def test_on_off_durations_are_exponential_with_the_given_means() -> None:
    rng = np.random.default_rng(6)
    mean_on, mean_off, horizon = 30.0, 10.0, 20_000.0
    schedule = on_off_availability(rng, 20, mean_on, mean_off, horizon)
    rows = schedule.rows()
    finite = rows[(rows["on_s"] > 0) & np.isfinite(rows["off_s"])]
    on_lengths = finite["off_s"] - finite["on_s"]
    n = len(on_lengths)
    assert abs(on_lengths.mean() - mean_on) < 4 * mean_on / math.sqrt(n)  # Exp: std = mean
    assert on_lengths.std() == pytest.approx(mean_on, rel=0.1)
    off_lengths = np.concatenate([_node(rows, d)["on_s"][1:] - _node(rows, d)["off_s"][:-1] for d in range(20)])
    assert abs(off_lengths.mean() - mean_off) < 4 * mean_off / math.sqrt(len(off_lengths))
    grid = np.linspace(0, horizon, 2001)
    on_fraction = np.mean([[schedule.is_on(d, t) for t in grid] for d in range(20)])
    assert on_fraction == pytest.approx(mean_on / (mean_on + mean_off), abs=0.03)


def _node(rows: np.ndarray, node: int) -> np.ndarray:
    return rows[rows["node"] == node]


def test_on_off_keeps_the_last_state_after_the_horizon() -> None:
    schedule = on_off_availability(np.random.default_rng(7), 50, 5.0, 5.0, 100.0)
    rows = schedule.rows()
    last_on = {int(r["node"]): r for r in rows}
    for node in range(50):
        still_on = node in last_on and math.isinf(last_on[node]["off_s"])
        assert schedule.is_on(node, 1e9) == still_on
    assert 10 < sum(schedule.is_on(d, 1e9) for d in range(50)) < 40
