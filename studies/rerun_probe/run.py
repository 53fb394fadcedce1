"""Running the rerun probe's cases and writing its record and page."""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from recipes.environment import device_name, git_commit
from recipes.records import RerunProbeRecord, write_text_atomic
from studies.rerun_probe import PAGE_FILE, RECORD_FILE, RESULTS, Outcome, page
from studies.rerun_probe.cases import CASES, Case
from studies.rerun_probe.workspace import can_mount, unmount_all, workspace


def probe(cases: list[Case]) -> list[Outcome]:
    outcomes = []
    mounting = can_mount()
    with tempfile.TemporaryDirectory(prefix="rerun-probe-") as folder:
        space = workspace(Path(folder))
        try:
            for case in cases:
                started = time.monotonic()
                if case.needs_mount and not mounting:
                    outcome, detail = "not run", "needs root to mount a small filesystem"
                else:
                    outcome, detail = case.probe(space)
                seconds = round(time.monotonic() - started, 1)
                outcomes.append(
                    Outcome(case.name, case.group, case.description, case.expected, outcome, detail, seconds)
                )
                print(f"{case.name}: {outcome} {detail}", flush=True)
        finally:
            unmount_all(Path(folder))
    return outcomes


def main(argv: list[str] | None = None) -> RerunProbeRecord:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=[case.name for case in CASES], help="Only these cases")
    parser.add_argument("--output_dir", default=str(RESULTS), help="Where probe.json and README.md go")
    parser.add_argument("--report_only", action="store_true", help="Write the page from the record, run nothing")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir)
    if args.report_only:
        record = RerunProbeRecord.read(output_dir / RECORD_FILE.name)
    else:
        started = time.monotonic()
        outcomes = probe([case for case in CASES if not args.cases or case.name in args.cases])
        record = RerunProbeRecord(
            cases=[asdict(outcome) for outcome in outcomes],
            device=device_name(),
            git_commit=git_commit(),
            seconds=round(time.monotonic() - started, 1),
        )
        record.write(output_dir / RECORD_FILE.name)
    write_text_atomic(output_dir / PAGE_FILE.name, page(record))
    return record
