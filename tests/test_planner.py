"""studies/planner.py: a step that ends without a current record stops the study before any later step runs."""

from __future__ import annotations

import pytest

from studies import planner


def test_a_step_left_without_a_current_record_stops_the_study_ungathered(tmp_path):
    ran, gathered = [], []

    def step(name: str, writes: str) -> planner.Step:
        record = tmp_path / f"{name}.json"
        return planner.Step(
            name,
            lambda argv: (ran.append(name), record.write_text(writes)),
            [],
            record,
            lambda path: path.read_text() == "done",
        )

    steps = [step("first", "done"), step("stopped", "signal"), step("after", "done")]
    with pytest.raises(SystemExit, match="stopped ended without a current record"):
        planner.run(steps, after=lambda done: gathered.append(done.name))
    assert ran == ["first", "stopped"] and gathered == ["first"]
