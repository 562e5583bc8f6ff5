"""bench/gap.py's decomposition of a plan: its bin-packing bounds are bounds (brute force on small item sets), and
on a real plan every TP degree's blocks are at least the L2 bound of the replicas they hold."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.gap import FIT_EPS, decompose, first_fit_decreasing, l1_bound, l2_bound


def _fewest_bins(sizes: list[float]) -> int:
    """The optimum, by trying every bin for every item (largest first)."""
    best = len(sizes)

    def place(i: int, bins: list[float]) -> None:
        nonlocal best
        if len(bins) >= best:
            return
        if i == len(sizes):
            best = len(bins)
            return
        for b in range(len(bins)):
            if bins[b] + sizes[i] <= 1 + FIT_EPS:
                bins[b] += sizes[i]
                place(i + 1, bins)
                bins[b] -= sizes[i]
        place(i + 1, bins + [sizes[i]])

    place(0, [])
    return best


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=1, max_size=8))
def test_bin_packing_bounds_bracket_the_optimum(hundredths):
    sizes = sorted((x / 100 for x in hundredths), reverse=True)
    optimum = _fewest_bins(sizes)
    assert l1_bound(sizes) <= l2_bound(sizes) <= optimum <= first_fit_decreasing(sizes)


def test_l2_counts_what_no_two_can_share():
    assert l1_bound([0.6, 0.6, 0.6]) == 2
    assert l2_bound([0.6, 0.6, 0.6]) == 3  # no two fit together
    assert l2_bound([0.6, 0.6, 0.3, 0.3]) == 2  # each small one beside a big one
    assert l2_bound([0.68, 0.32]) == 1  # they sum to 1 only up to floating point


def test_a_plans_blocks_hold_at_least_the_l2_bound_of_their_replicas(fleet):
    from planner.greedy import greedy_plan

    plan = greedy_plan(fleet.demands, fleet.offers, fleet.scenario.policy)
    out = decompose(plan, fleet.demands)
    assert sum(c["replicas"] for c in out["classes"].values()) == len(plan.replicas)
    for c in out["classes"].values():
        assert c["l1"] <= c["l2"] <= c["blocks"]
    options = [(fleet.demands[r.deployment].options[r.option], r.seqs) for r in plan.replicas]
    held = sum(p.placed_bytes(k) / p.limit_bytes * p.tp for p, k in options)  # GPUs' worth of bytes held
    assert out["gpus"] - out["free_gpus"] == pytest.approx(held)
    assert 0 <= out["free_with_room_for_a_sequence"] <= 1
    assert out["replicas_above_minimum"] >= 0
