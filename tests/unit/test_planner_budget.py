"""The RAM budget is total RAM minus a documented reserve, so verdicts do not flip."""

from __future__ import annotations

from dataclasses import replace

from localchat.planner.budget import RAM_RESERVE_MIN_BYTES, budgets_for, ram_reserve_bytes
from localchat.planner.memory import GiB
from localchat.planner.profiles import what_if_hardware
from localchat.planner.reasons import ram_note


def test_budget_does_not_move_with_free_memory() -> None:
    machine = what_if_hardware(ram=24 * GiB, cpu_only=True)
    busy = replace(machine, ram_available_bytes=int(15.3 * GiB))
    idle = replace(machine, ram_available_bytes=int(21.5 * GiB))
    assert budgets_for(busy).ram_budget_bytes == budgets_for(idle).ram_budget_bytes
    assert budgets_for(idle).ram_budget_bytes == 24 * GiB - ram_reserve_bytes(24 * GiB)


def test_reserve_has_a_floor_and_scales() -> None:
    assert ram_reserve_bytes(4 * GiB) == RAM_RESERVE_MIN_BYTES
    assert ram_reserve_bytes(64 * GiB) > ram_reserve_bytes(16 * GiB) > RAM_RESERVE_MIN_BYTES


def test_plan_says_when_less_is_free_right_now() -> None:
    machine = replace(what_if_hardware(ram=24 * GiB, cpu_only=True), ram_available_bytes=2 * GiB)
    budgets = budgets_for(machine)
    note = ram_note(5 * GiB, machine, budgets)
    assert note.startswith("only 2.0 GiB of RAM is free right now")
    assert ram_note(1 * GiB, machine, budgets) == ""
