"""studies/healing/frontier.py: layouts chosen by the agreement of single-layer replacements, and latency of every
point beside the same-implementation control and HF's BertModel."""

from __future__ import annotations

import pytest

from recipes.records import FrontierRecord
from studies.healing.frontier import HF_BERT, SAME_IMPLEMENTATION, frontier_layouts, main, point_name


def test_layouts_replace_the_layers_whose_replacement_alone_costs_least():
    agreements = {0: 0.90, 1: 0.99, 2: 0.95, 3: 0.97, 4: 0.98, 5: 0.99}
    layouts = frontier_layouts(agreements, "pooling", [2, 3, 6])
    assert layouts[2] == ["self", "pooling", "self", "self", "self", "pooling"]  # a tie goes to the lower layer
    assert layouts[3] == ["self", "pooling", "self", "self", "pooling", "pooling"]
    assert layouts[6] == ["pooling"] * 6


@pytest.mark.slow
def test_frontier_measures_every_point_against_the_same_implementation(teacher_dir, tmp_path):
    argv = [
        "--teacher", str(teacher_dir), "--tasks", "trec", "--texts_per_task", "16", "--max_length", "32",
        "--counts", "2", "4", "--batch_sizes", "1", "2", "--seqs", "16", "--repeats", "1", "--output_dir", str(tmp_path),
    ]  # fmt: skip
    record = main(argv)
    assert FrontierRecord.read(tmp_path / "frontier.json") == record
    for mixer in ("additive", "pooling"):
        assert set(record.layer_agreement[mixer]) == {"0", "1", "2", "3"}
        assert all(-1 <= value <= 1 for value in record.layer_agreement[mixer].values())
        assert [layout.count(mixer) for layout in record.layouts[mixer].values()] == [2, 4]
    assert set(record.latency_ms) == {"1x16", "2x16"}
    for shape in record.latency_ms.values():
        names = set(shape["encoders"])
        assert names == {
            HF_BERT,
            SAME_IMPLEMENTATION,
            *(point_name(m, k) for m in ("additive", "pooling") for k in (2, 4)),
        }
        assert shape["encoders"][SAME_IMPLEMENTATION]["ratio_vs"][SAME_IMPLEMENTATION] == 1.0
        assert len(shape["load_average_before"]) == 3
    readme = (tmp_path / "README.md").read_text()
    assert "| pooling k=4 | pppp |" in readme and f"| {SAME_IMPLEMENTATION} | all s |" in readme


def test_the_committed_frontier_page_is_what_its_record_gives():
    from studies.healing.frontier import RESULTS, report

    assert report(FrontierRecord.read(RESULTS / "frontier.json")) == (RESULTS / "README.md").read_text()
