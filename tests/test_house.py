"""The house's rules, measured from its imports (scripts/house.py prints the same figures): each room stands on the
rooms below it and never imports one above, the import graph stays shallow, and `higgs_train/` keeps its modules in
rooms rather than loose in its hall."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "house.py"
spec = importlib.util.spec_from_file_location("house", SCRIPT)
house = importlib.util.module_from_spec(spec)
spec.loader.exec_module(house)


def test_no_room_imports_one_that_stands_above_it():
    assert house.loops(house.arrows()) == []


def test_the_import_graph_is_at_most_nine_floors_deep():
    assert max(house.floors(house.arrows()).values()) <= 9


def test_the_hall_keeps_at_most_three_loose_modules():
    assert len(house.loose_modules()) <= 3


def test_the_rule_sees_a_loop():
    """The check itself: a room that imports one above it is a loop the rule names."""
    graph = {"higgs_train/data": {"higgs_train/model"}, "higgs_train/model": {"higgs_train/data"}}
    assert house.loops(graph) == [("higgs_train/data", "higgs_train/model"), ("higgs_train/model", "higgs_train/data")]
