"""Synthetic input traces: random waypoint and Gauss–Markov mobility, on/off availability.

Every generator takes the ``numpy.random.Generator`` it draws from (nothing
else is random) and returns the same types as a trace file
(:class:`~traces.inputs.MobilityTrace`, :class:`~traces.inputs.AvailabilitySchedule`),
so a generated trace and an imported one drive the simulator alike.
Positions are sampled on the grid 0, Δt, 2Δt, …, ⌈duration/Δt⌉·Δt; nodes
start at the given positions (the scenario's layout) at t = 0.

    >>> rng = np.random.default_rng(1)
    >>> trace = random_waypoint(rng, np.zeros((3, 2)), (0, 0, 100, 100), (1.0, 2.0), 0.0, 1.0, 60.0)
    >>> trace.xy_m.shape, float(trace.times_s[-1])
    ((61, 3, 2), 60.0)
    >>> schedule = on_off_availability(rng, 3, 50.0, 10.0, 600.0)
    >>> schedule.max_node <= 2
    True
"""

from __future__ import annotations

import math

import numpy as np

from traces.inputs import AvailabilitySchedule, MobilityTrace
from traces.schema import TABLES

Bounds = tuple[float, float, float, float]
"""(x_min_m, y_min_m, x_max_m, y_max_m) of the rectangle nodes move in."""


def sample_times_s(sample_interval_s: float, duration_s: float) -> np.ndarray:
    """The grid k·Δt, k = 0..⌈duration/Δt⌉ (its last point is at or just after ``duration_s``)."""
    if not (sample_interval_s > 0 and duration_s > 0):
        raise ValueError(f"sample_interval_s and duration_s must be > 0, got {sample_interval_s}, {duration_s}")
    n_steps = math.ceil(duration_s / sample_interval_s - 1e-9)
    return np.arange(n_steps + 1) * sample_interval_s


def _check_bounds(bounds_m: Bounds) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in bounds_m)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"bounds_m must be (x_min, y_min, x_max, y_max) with max > min, got {bounds_m}")
    return x0, y0, x1, y1


def random_waypoint(
    rng: np.random.Generator,
    start_xy_m: np.ndarray,
    bounds_m: Bounds,
    speed_m_s: tuple[float, float],
    pause_s: float,
    sample_interval_s: float,
    duration_s: float,
) -> MobilityTrace:
    """Random waypoint mobility (Johnson & Maltz 1996, "Dynamic source routing in ad hoc wireless networks").

    Each node pauses ``pause_s``, then picks a destination uniform in the
    rectangle and a speed v ~ U(v_min, v_max), moves there in a straight line
    (arriving after ‖dest − here‖ / v), pauses again, and so on. Draws per
    leg, node by node: destination x, destination y, speed.

    The trace is sampled every ``sample_interval_s``; between samples it is
    interpolated linearly, so a turn inside a sample interval is cut short by
    at most v_max·Δt/2.

    Args:
        start_xy_m: (n, 2) positions at t = 0.
        bounds_m: the rectangle destinations are drawn from.
        speed_m_s: (v_min, v_max), 0 < v_min ≤ v_max (v_min = 0 would let a node
            crawl forever: the speed decay of Yoon, Liu & Noble 2003).
        pause_s: pause at the start and at every destination (≥ 0).
    """
    x0, y0, x1, y1 = _check_bounds(bounds_m)
    v_min, v_max = (float(v) for v in speed_m_s)
    if not 0 < v_min <= v_max:
        raise ValueError(f"speed_m_s must be (v_min, v_max) with 0 < v_min <= v_max, got {speed_m_s}")
    if pause_s < 0:
        raise ValueError(f"pause_s must be >= 0, got {pause_s}")
    start = np.asarray(start_xy_m, dtype=float)
    times = sample_times_s(sample_interval_s, duration_s)
    xy = np.empty((len(times), len(start), 2))
    for node, here in enumerate(start):
        t_knots, p_knots = [0.0, pause_s], [here, here]
        t = pause_s
        while t < times[-1]:
            dest = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            speed = rng.uniform(v_min, v_max)
            t += float(np.linalg.norm(dest - p_knots[-1])) / speed
            t_knots += [t, t + pause_s]
            p_knots += [dest, dest]
            t += pause_s
        knots = np.array(p_knots)
        t_arr = np.array(t_knots)
        keep = np.concatenate([[True], np.diff(t_arr) > 0])  # zero pauses give repeated knots
        xy[:, node, 0] = np.interp(times, t_arr[keep], knots[keep, 0])
        xy[:, node, 1] = np.interp(times, t_arr[keep], knots[keep, 1])
    return MobilityTrace(times, xy)


def gauss_markov_step(
    rng: np.random.Generator, previous: np.ndarray, alpha: float, mean: np.ndarray | float, std: float
) -> np.ndarray:
    """One step of the first-order Gauss–Markov (AR(1)) process of Liang & Haas 1999 (eq. 1)

        x_n = α·x_{n−1} + (1 − α)·μ + √(1 − α²)·w_n,   w_n ~ N(0, σ²),

    for every entry of ``previous`` at once. Its stationary law is N(μ, σ²)
    with lag-k correlation α^k, so a series started from a draw of N(μ, σ²)
    stays stationary.
    """
    noise = rng.normal(0.0, std, np.shape(previous))
    return alpha * previous + (1.0 - alpha) * mean + math.sqrt(1.0 - alpha * alpha) * noise


def gauss_markov(
    rng: np.random.Generator,
    start_xy_m: np.ndarray,
    bounds_m: Bounds,
    alpha: float,
    mean_speed_m_s: float,
    speed_std_m_s: float,
    direction_std_rad: float,
    sample_interval_s: float,
    duration_s: float,
) -> MobilityTrace:
    """Gauss–Markov mobility (Liang & Haas 1999; as stated in Camp, Boleng & Davies 2002, §2.5).

    Speed s and direction d are updated every Δt = ``sample_interval_s``:

        s_n = α·s_{n−1} + (1 − α)·s̄ + √(1 − α²)·s_w,   s_w ~ N(0, σ_s²)
        d_n = α·d_{n−1} + (1 − α)·d̄ + √(1 − α²)·d_w,   d_w ~ N(0, σ_d²)
        x_n = x_{n−1} + s_{n−1}·cos(d_{n−1})·Δt,   y_n = y_{n−1} + s_{n−1}·sin(d_{n−1})·Δt

    α = 0 is a memoryless walk, α = 1 straight-line motion. Each node's mean
    direction d̄ is uniform on [0, 2π); s_0 ~ N(s̄, σ_s²) and d_0 ~ N(d̄, σ_d²)
    (the stationary law). A node that would leave the rectangle is reflected
    at its border and its direction and mean direction mirrored (d → π − d on
    the x borders, d → −d on the y borders), which steers it back inside as
    Camp et al. do near edges. The Gaussian speed is not clipped: with
    σ_s comparable to s̄ a node may briefly move backwards.

    Draw order: mean directions, s_0, d_0, then per step the speed noise and
    the direction noise (all nodes at once).
    """
    x0, y0, x1, y1 = _check_bounds(bounds_m)
    if mean_speed_m_s < 0 or speed_std_m_s < 0 or direction_std_rad < 0:
        raise ValueError("mean_speed_m_s, speed_std_m_s and direction_std_rad must be >= 0")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    start = np.asarray(start_xy_m, dtype=float)
    if np.any((start < (x0, y0)) | (start > (x1, y1))):
        raise ValueError(f"start positions must lie inside bounds_m {bounds_m}")
    n = len(start)
    times = sample_times_s(sample_interval_s, duration_s)
    mean_dir = rng.uniform(0.0, 2.0 * math.pi, n)
    speed = rng.normal(mean_speed_m_s, speed_std_m_s, n)
    direction = rng.normal(mean_dir, direction_std_rad)
    xy = np.empty((len(times), n, 2))
    xy[0] = start
    for k in range(1, len(times)):
        step = (speed * float(sample_interval_s))[:, None] * np.stack([np.cos(direction), np.sin(direction)], axis=-1)
        pos = xy[k - 1] + step
        speed = gauss_markov_step(rng, speed, alpha, mean_speed_m_s, speed_std_m_s)
        direction = gauss_markov_step(rng, direction, alpha, mean_dir, direction_std_rad)
        for axis, low, high, mirror in ((0, x0, x1, math.pi), (1, y0, y1, 0.0)):
            below, above = pos[:, axis] < low, pos[:, axis] > high
            pos[:, axis] = np.where(below, 2 * low - pos[:, axis], np.where(above, 2 * high - pos[:, axis], pos[:, axis]))
            direction = np.where(below | above, mirror - direction, direction)
            mean_dir = np.where(below | above, mirror - mean_dir, mean_dir)
        xy[k] = np.clip(pos, (x0, y0), (x1, y1))  # a step longer than the rectangle is reflected once, then clipped
    return MobilityTrace(times, xy)


def on_off_availability(
    rng: np.random.Generator, n_nodes: int, mean_on_s: float, mean_off_s: float, duration_s: float
) -> AvailabilitySchedule:
    """Independent on/off churn per device: an alternating renewal process with exponential durations.

    On periods ~ Exp(mean ``mean_on_s``), off periods ~ Exp(mean ``mean_off_s``).
    A device starts on with the stationary probability p_on = mean_on/(mean_on + mean_off)
    (and, durations being memoryless, its first period has the same law as
    the others), so the fraction of time on is p_on at every t. Draws per
    device: the initial state, then alternating durations until ``duration_s``.
    After ``duration_s`` a device keeps its last state: an on period still
    running there has ``off_s = inf``.
    """
    if not (mean_on_s > 0 and mean_off_s > 0 and duration_s > 0):
        raise ValueError("mean_on_s, mean_off_s and duration_s must be > 0")
    p_on = mean_on_s / (mean_on_s + mean_off_s)
    rows = []
    for node in range(n_nodes):
        on = bool(rng.random() < p_on)
        t = 0.0
        while t < duration_s:
            length = float(rng.exponential(mean_on_s if on else mean_off_s))
            if on:
                rows.append((node, t, t + length if t + length < duration_s else math.inf))
            t += length
            on = not on
    return AvailabilitySchedule(np.array(rows, TABLES["availability"]))
