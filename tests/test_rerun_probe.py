"""The rerun probe (`studies/rerun_probe.py`, issue 32): how it reads a process's end and classifies it, one real case
end to end, and its committed page regenerated from its record."""

from __future__ import annotations

import pytest

from recipes.records import RerunProbeRecord
from studies.rerun_probe import PAGE_FILE, RECORD_FILE, Result, classify, page, result_of
from studies.rerun_probe.cases import CASES
from studies.rerun_probe.run import main as probe_main

TRACEBACK = """Traceback (most recent call last):
  File "recipes/pretrain.py", line 1, in <module>
    main()
recipes.run_folder.resume.RunMismatchError: runs/x holds a run that this command would shape differently:
  training.learning_rate: the run has 0.002, this command 0.003
Run it in another --output_dir, or pass --overwrite_output_dir to replace it.
"""


def test_the_escaping_exception_is_read_with_every_line_of_its_message():
    result = result_of(1, "some warning\n" + TRACEBACK)
    assert result.error_type == "RunMismatchError"
    assert result.message.startswith("runs/x holds a run") and "training.learning_rate" in result.message
    assert result_of(0, "all fine\n").error_type is None


@pytest.mark.parametrize(
    "result, expect, names, intact, check, outcome",
    [
        (Result(-11, None, "", ""), "refuse", (), True, "", "crash"),
        (Result(139, None, "", ""), "continue", (), True, "", "crash"),
        (Result(1, "ValueError", "x", ""), "refuse", (), False, "", "data loss"),
        (Result(0, None, "", ""), "refuse", ("lr",), True, "", "silently wrong"),
        (Result(1, "SafetensorError", "invalid header", ""), "refuse", (), True, "", "unclear error"),
        (Result(1, "ValueError", "bad --learning_rate", ""), "refuse", ("train_file",), True, "", "unclear error"),
        (Result(1, "RunMismatchError", "training.learning_rate: …", ""), "refuse", ("learning_rate",), True, "",
         "clear error"),
        (Result(0, None, "", ""), "continue", (), True, "", "ok"),
        (Result(0, None, "", ""), "continue", (), True, "stopped at step 3", "silently wrong"),
        (Result(1, "KeyError", "'x'", ""), "continue", (), True, "", "unclear error"),
    ],
)  # fmt: skip
def test_outcomes_are_classified_by_exit_exception_cause_and_files(result, expect, names, intact, check, outcome):
    assert classify(result, expect, names, intact, check)[0] == outcome


def test_a_real_case_runs_end_to_end(tmp_path):
    """A folder of notes and a thesis given to `pretrain.py --overwrite_output_dir`: refused, every file kept."""
    record = probe_main(["--cases", "overwrite-notes", "--output_dir", str(tmp_path)])
    (case,) = record.cases
    assert case["outcome"] == "clear error" and "not a run of this project" in case["detail"]
    assert RerunProbeRecord.read(tmp_path / "probe.json") == record
    assert "**1 clear error**" in (tmp_path / "README.md").read_text(encoding="utf-8")


def test_the_committed_page_is_what_its_record_gives():
    """Every case of the probe is in the committed record, and the page is what the record gives."""
    record = RerunProbeRecord.read(RECORD_FILE)
    assert {case["case"] for case in record.cases} == {case.name for case in CASES}
    assert PAGE_FILE.read_text(encoding="utf-8") == page(record)
