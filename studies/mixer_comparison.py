"""Equal-budget comparison of each mixer as its paper's equations define it against its authors' reference code: for
each mixer whose spec names reference-code options, pretrain the variant that uses it most (pool-hybrid for pooling,
addbert for additive) twice — with the options at `MIXER_SPECS[mixer].paper_equations` and at `.reference_code` —
for the same wall-clock budget, with each pretraining seed, then write the MLM curves side by side as one markdown
table. Both arms name their options explicitly, so the comparison means the same whichever the config's defaults are.

    python -m studies.mixer_comparison --size mini --budget 10m --seeds 1 2 3 --output_dir runs/mixer-options \
        --table results/mixer_options.md

Equal wall-clock is calibrated: before its runs, each arm's training throughput is measured at the runs' settings
(`recipes/training/calibration.py`, both arms of a mixer in one interleaved measurement, kept and reused as
`<output_dir>/calibration-<variant>-<arm>-<size>.json`), and each run trains for its arm's calibrated steps, so neither
a rerun nor the machine's load changes a result (`--no_calibrate`: the live clock). Run directories are
`<output_dir>/<variant>-<arm>-<size>-<budget>-seed<seed>` (arm: `paper` or `reference-code`); a finished one (its
`mlm_curve.json` and `budget.json` are there) is not run again, and one killed part-way resumes from its last
checkpoint: give another `--output_dir` when changing other arguments. Both arms of a seed start from the same
`--seed`, see the same batches and are evaluated on the same held-out blocks at the same fractions of the budget, so
the table pairs them by seed. Extra pretraining arguments go in `--pretrain_args`. `--report_only` writes the table of
the mixers finished so far without running anything.
"""

from __future__ import annotations

import json
import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from modeling import MIXER_SPECS, VARIANTS
from recipes import pretrain
from recipes.cards.markdown import markdown_table
from recipes.evaluation.stats import paired_difference
from recipes.records import PretrainingRecord, write_text_atomic
from recipes.run_folder.naming import run_name
from recipes.training import calibration
from recipes.training.arguments import parse_args
from recipes.training.curves import CURVE_FILE, load_curve

ARMS = ("paper", "reference-code")
TABLE_FILE = "mlm_comparison.md"


@dataclass
class ComparisonArguments:
    output_dir: str = field(default="runs/mixer-options", metadata={"help": "Where the run directories go"})
    size: str = field(default="mini", metadata={"help": "tiny, mini, small, minilm or base"})
    budget: str = field(default="10m", metadata={"help": "Wall-clock pretraining budget of every run"})
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "Pretraining seeds, one run each"})
    mixers: list[str] = field(
        default_factory=lambda: [name for name, spec in MIXER_SPECS.items() if spec.reference_code],
        metadata={"help": "Mixers whose reference-code options are compared (default: every one that has some)"},
    )
    config_overrides: str = field(
        default="", metadata={"help": "Config fields both arms override, e.g. 'hidden_size=64,num_attention_heads=2'"}
    )
    pretrain_args: str = field(
        default="", metadata={"help": "Extra recipes.pretrain arguments, one string (not --config_overrides)"}
    )
    calibrate: bool = field(
        default=True,
        metadata={
            "help": "Measure each arm's training throughput first (a recipes.training.calibration record per arm in "
            "--output_dir) and train every run for its arm's calibrated steps: equal wall-clock that neither a rerun "
            "nor the machine's load changes. --no_calibrate trains each run on the live clock"
        },
    )
    only_calibrate: bool = field(
        default=False,
        metadata={
            "help": "Make the missing calibration records and stop (measure while the machine is idle, train later)"
        },
    )
    report_only: bool = field(
        default=False,
        metadata={"help": "Train nothing: write the table of the mixers whose runs have all finished"},
    )
    table: str | None = field(
        default=None, metadata={"help": f"The markdown table (default <output_dir>/{TABLE_FILE})"}
    )

    def __post_init__(self):
        for mixer in self.mixers:
            if mixer not in MIXER_SPECS or not MIXER_SPECS[mixer].reference_code:
                having = [name for name, spec in MIXER_SPECS.items() if spec.reference_code]
                raise ValueError(f"--mixers {mixer!r}: choose among the mixers with reference-code options: {having}.")
        if "--config_overrides" in shlex.split(self.pretrain_args):
            raise ValueError("Give config overrides with --config_overrides, not inside --pretrain_args.")
        if self.only_calibrate and not self.calibrate:
            raise ValueError("--only_calibrate makes the calibration records that --no_calibrate turns off.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds must name distinct seeds; got {self.seeds}.")


def showcase_variant(mixer: str) -> str:
    """The named variant with the most layers of `mixer` (at 12 layers; the first such on a tie)."""
    return max(VARIANTS, key=lambda variant: VARIANTS[variant].layout(12).count(mixer))


def arm_overrides(mixer: str, arm: str) -> dict:
    spec = MIXER_SPECS[mixer]
    return spec.reference_code if arm == "reference-code" else spec.paper_equations


def run_dir(args: ComparisonArguments, mixer: str, arm: str, seed: int) -> Path:
    return Path(args.output_dir) / run_name(showcase_variant(mixer), arm, args.size, args.budget, seed=seed)


def calibration_file(args: ComparisonArguments, mixer: str, arm: str) -> Path:
    return Path(args.output_dir) / f"calibration-{showcase_variant(mixer)}-{arm}-{args.size}.json"


def pretraining_argv(args: ComparisonArguments, mixer: str, arm: str, seed: int) -> list[str]:
    """The run's command; a run killed part-way resumes from its last checkpoint when the comparison runs again."""
    options = [f"{name}={json.dumps(value)}" for name, value in arm_overrides(mixer, arm).items()]
    overrides = ",".join(filter(None, [args.config_overrides, *options]))
    calibration = ["--calibration", str(calibration_file(args, mixer, arm))] if args.calibrate else []
    return [
        "--variant", showcase_variant(mixer), "--size", args.size, "--budget", args.budget, "--seed", str(seed),
        *(["--config_overrides", overrides] if overrides else []), *calibration, *shlex.split(args.pretrain_args),
        "--output_dir", str(run_dir(args, mixer, arm, seed)),
    ]  # fmt: skip


def finished(directory: Path) -> bool:
    return (directory / CURVE_FILE).is_file() and PretrainingRecord.exists(directory)


def mean_and_sd(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    spread = f" ± {scale * statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{scale * statistics.mean(values):.{digits}f}{spread}"


def comparison_table(mixer: str, curves: dict[str, list[list[dict]]]) -> str:
    """One row per evaluation point: wall-clock time, tokens seen and MLM accuracy of each arm (mean ± sd over seeds),
    and the reference-code arm's accuracy minus the paper one's, paired by seed; then the final loss."""
    seeds = min(len(runs) for runs in curves.values())
    points = min(len(curve) for runs in curves.values() for curve in runs)
    header = ["point", "elapsed (s)", *(f"{arm}: {what}" for arm in ARMS for what in ("tokens", "MLM acc (%)"))]
    header.append("reference-code − paper (pp)")
    rows = []
    for point in range(points):
        at = {arm: [curve[point] for curve in curves[arm][:seeds]] for arm in ARMS}
        cells = [str(point), mean_and_sd([p["elapsed_s"] for arm in ARMS for p in at[arm]], digits=0)]
        for arm in ARMS:
            cells += [
                mean_and_sd([p["tokens_seen"] for p in at[arm]], digits=0),
                mean_and_sd([p["accuracy"] for p in at[arm]], 100),
            ]
        paired = [coded["accuracy"] - paper["accuracy"] for paper, coded in zip(at[ARMS[0]], at[ARMS[1]])]
        rows.append([*cells, mean_and_sd(paired, 100)])
    final_loss = {
        arm: mean_and_sd([curve[points - 1]["loss"] for curve in curves[arm][:seeds]], digits=3) for arm in ARMS
    }
    options = {
        arm: ", ".join(f"`{name}={json.dumps(value)}`" for name, value in arm_overrides(mixer, arm).items())
        for arm in ARMS
    }
    table = "\n".join(markdown_table(header, rows))
    final = {
        arm: {seed: curve[points - 1]["accuracy"] for seed, curve in enumerate(curves[arm][:seeds])} for arm in ARMS
    }
    interval = ""
    if seeds > 1:
        difference = paired_difference(final[ARMS[1]], final[ARMS[0]])
        interval = (
            f" Final MLM accuracy, reference-code − paper: {100 * difference.mean:+.2f} points, 95% interval "
            f"[{100 * difference.low:+.2f}, {100 * difference.high:+.2f}] over {seeds} paired seeds."
        )
    return (
        f"### {MIXER_SPECS[mixer].label}: `{showcase_variant(mixer)}`, {seeds} seed{'s' if seeds > 1 else ''}\n\n"
        f"paper: {options['paper']}; reference-code: {options['reference-code']}. Final held-out MLM loss: paper "
        f"{final_loss['paper']}, reference-code {final_loss['reference-code']}.{interval}\n\n{table}"
    )


def write_table(args: ComparisonArguments) -> Path:
    """The table of every mixer whose runs have all finished; the heading names the mixers still running."""
    complete = [
        mixer
        for mixer in args.mixers
        if all(finished(run_dir(args, mixer, arm, seed)) for arm in ARMS for seed in args.seeds)
    ]
    sections = [
        comparison_table(
            mixer, {arm: [load_curve(run_dir(args, mixer, arm, seed)) for seed in args.seeds] for arm in ARMS}
        )
        for mixer in complete
    ]
    pending = [mixer for mixer in args.mixers if mixer not in complete]
    heading = (
        f"## Mixers as their papers state them vs their reference code: size {args.size}, budget {args.budget} each\n\n"
    )
    if pending:
        heading += f"Not finished yet: {', '.join(pending)}.\n\n"
    table = Path(args.table or Path(args.output_dir) / TABLE_FILE)
    write_text_atomic(table, heading + "\n\n".join(sections) + "\n")
    print(table.read_text(encoding="utf-8"))
    return table


def main(argv: list[str] | None = None) -> Path | None:
    (args,) = parse_args((ComparisonArguments,), argv)
    if args.report_only:
        return write_table(args)
    for mixer in args.mixers:
        missing = [arm for arm in ARMS if not calibration_file(args, mixer, arm).is_file()]
        if args.calibrate and missing:
            # Both arms in one interleaved measurement, so that their step counts compare.
            calibration.calibrate_together(
                [
                    calibration.argv_matching(
                        pretraining_argv(args, mixer, arm, args.seeds[0]), calibration_file(args, mixer, arm)
                    )
                    for arm in ARMS
                ]
            )
    if args.only_calibrate:
        return None
    for mixer in args.mixers:
        for seed in args.seeds:
            for arm in ARMS:
                if not finished(run_dir(args, mixer, arm, seed)):
                    pretrain.main(pretraining_argv(args, mixer, arm, seed))
    return write_table(args)


if __name__ == "__main__":
    main()
