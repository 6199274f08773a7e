"""Figures: every event kind has a timeline colour; a D2D round's timeline draws one bar per message."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from sim import plots  # noqa: E402
from sim.runner import run_scenario  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402
from traces import EVENT_KINDS, read_run  # noqa: E402


def test_every_event_kind_has_a_timeline_colour() -> None:
    assert set(plots._TIMELINE_COLOURS) == set(EVENT_KINDS)


def test_timeline_of_a_d2d_round_has_one_bar_per_message_and_action(tmp_path) -> None:
    scenario = load_scenario("small", ["training.enabled=false", "rounds=1", "d2d.radius_m=300",
                                       'schemes=[{name="r", protocol="edge_only", d2d="relay"}]'])  # fmt: skip
    run_scenario(scenario, tmp_path / "r.h5", progress=False)
    run = read_run(tmp_path / "r.h5")
    fig, axes = plots.figure(1, 1)
    plots.timeline(run, "r", 1, axes[0])
    bars = sum(len(c.get_paths()) for c in axes[0].collections)
    ev = run.events
    messages = ((ev["role"] == 0) & (ev["module"] == b"header")).sum()
    local = (ev["role"] == 2).sum()
    assert bars == messages + local
    assert "d2d" in [t.get_text() for t in axes[0].get_legend().get_texts()]
