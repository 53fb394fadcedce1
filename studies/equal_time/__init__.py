"""The equal-time study: at equal calibrated wall-clock, which token mixer learns masked language modelling fastest,
when does each leave the unigram plateau, and does it show downstream (issue 30; README beside this file).

The plan (`plan.json`) declares the arms (a variant and its config overrides), the budgets with their evaluation
points, the pretraining seeds and the long runs; everything else in a run's command follows from it:

    python -m studies.equal_time calibrate     # one interleaved measurement of every arm, on an idle machine
    python -m studies.equal_time pretrain --jobs 2
    python -m studies.equal_time status

A run is `<arm>-<budget>-seed<seed>`. Its seed sets both the initialisation and the training data order and masks
(`--seed s --data_seed s`), so seed s of every arm sees the same batches and the seeds vary the data order; the
held-out blocks and masks are the same for every run (`--held_out_seed 42`). Each run trains for its arm's calibrated
steps (`recipes.training.calibration`), so neither a rerun nor the machine's load changes its result. A run is done when its
record (`budget.json`) holds the planned key and its planned steps; a killed run resumes from its last checkpoint
when the study runs again. A finished run's records (`budget.json`, `mlm_curve.json`) are gathered under
`results/equal_time/runs/<run>/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recipes.records import read_json_object
from recipes.run_folder.naming import run_name
from recipes.training.clock import parse_budget
from recipes.training.pretrain_arguments import parse_args

PLAN_FILE = Path(__file__).with_name("plan.json")
SCHEMA_VERSION = 1
RESULTS_DIR = Path("results/equal_time")
CALIBRATION_DIR = RESULTS_DIR / "calibration"
RECORDS_DIR = RESULTS_DIR / "runs"
# Arguments the recipes gained after the study's runs were made, at the values that keep the behaviour those runs had.
# Every study command states them, and a record that lacks one agrees with them. max_train_tokens 0: every training
# block is prepared; left unset, a calibrated run prepares only the tokens its budget uses, which moves the decoder's
# unigram bias and the data order (measured: `bert` 15m seed 1's step-0 held-out loss 7.3561 against the recorded 7.3468).
ADDED_ARGUMENTS = {"max_train_tokens": 0}


@dataclass(frozen=True)
class Arm:
    name: str
    variant: str
    overrides: str


@dataclass(frozen=True)
class PlannedRun:
    arm: Arm
    budget: str
    seed: int
    eval_points: int

    @property
    def name(self) -> str:
        return run_name(self.arm.name, self.budget, seed=self.seed)


@dataclass(frozen=True)
class Plan:
    size: str
    common_overrides: str
    threads: int
    pretrain_args: tuple[str, ...]
    arms: dict[str, Arm]
    budgets: dict[str, int]
    seeds: tuple[int, ...]
    long_runs: tuple[dict, ...]
    primary_endpoints: tuple[dict, ...] = ()
    plateau: dict | None = None
    finetuning: dict | None = None
    # exploratory contrasts beyond every arm against the reference: (arm, reference) pairs, as the README declares
    contrasts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def read(cls, path: str | Path = PLAN_FILE) -> Plan:
        data = read_json_object(path, "study plan")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{path}: schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}.")
        arms = {name: Arm(name, spec["variant"], spec.get("overrides", "")) for name, spec in data["arms"].items()}
        for budget in data["budgets"]:
            parse_budget(budget)
        for run in data.get("long_runs", []):
            if run["arm"] not in arms:
                raise ValueError(f"{path}: long run of unknown arm {run['arm']!r} (arms: {', '.join(arms)}).")
            parse_budget(run["budget"])
        for endpoint in data.get("primary_endpoints", []):
            unknown = [endpoint[k] for k in ("arm", "reference") if endpoint[k] not in arms]
            if unknown or endpoint["budget"] not in data["budgets"]:
                raise ValueError(f"{path}: endpoint {endpoint['id']} names an arm or budget the plan lacks.")
        contrasts = tuple(tuple(pair) for pair in data.get("contrasts", []))
        if any(len(pair) != 2 or set(pair) - set(arms) for pair in contrasts):
            raise ValueError(f"{path}: each contrast is [arm, reference] of the plan's arms; got {list(contrasts)}.")
        return cls(
            size=data["size"],
            common_overrides=data.get("common_overrides", ""),
            threads=int(data["threads"]),
            pretrain_args=tuple(data["pretrain_args"]),
            arms=arms,
            budgets=dict(data["budgets"]),
            seeds=tuple(data["seeds"]),
            long_runs=tuple(data.get("long_runs", [])),
            primary_endpoints=tuple(data.get("primary_endpoints", [])),
            plateau=data.get("plateau"),
            finetuning=data.get("finetuning"),
            contrasts=contrasts,
        )

    def overrides(self, arm: Arm) -> str:
        return ",".join(filter(None, [self.common_overrides, arm.overrides]))

    def runs(self) -> list[PlannedRun]:
        """Every run, shortest budget first and seed by seed, so that a study stopped part-way holds whole seeds of
        every arm at the budgets it reached; then the long runs."""
        planned = [
            PlannedRun(arm, budget, seed, points)
            for budget, points in sorted(self.budgets.items(), key=lambda item: parse_budget(item[0]))
            for seed in self.seeds
            for arm in self.arms.values()
        ]
        planned += [
            PlannedRun(self.arms[run["arm"]], run["budget"], run["seed"], run["eval_points"]) for run in self.long_runs
        ]
        return planned

    def first_run(self, arm: Arm) -> PlannedRun:
        """The arm's run at the shortest budget and first seed: what a per-arm setting (calibration, data) is read
        from, since every run of an arm shares it."""
        shortest = min(self.budgets, key=parse_budget)
        return PlannedRun(arm, shortest, self.seeds[0], self.budgets[shortest])

    def data_arguments(self):
        """The pretraining data arguments every run shares (the same text, blocks and held-out set)."""
        arm = next(iter(self.arms.values()))
        return parse_args(self.pretraining_argv(self.first_run(arm), Path("unused")))[1]

    def calibration_file(self, arm: Arm, root: Path = Path(".")) -> Path:
        return root / CALIBRATION_DIR / f"{arm.name}.json"

    def pretraining_argv(self, run: PlannedRun, output_dir: Path, root: Path = Path(".")) -> list[str]:
        """The run's `recipes.pretrain` command: the same command resumes it."""
        overrides = self.overrides(run.arm)
        return [
            "--variant", run.arm.variant, "--size", self.size,
            *(["--config_overrides", overrides] if overrides else []),
            *self.pretrain_args,
            "--budget", run.budget, "--calibration", str(self.calibration_file(run.arm, root)),
            "--num_eval_points", str(run.eval_points),
            "--seed", str(run.seed), "--data_seed", str(run.seed),
            *(item for name, value in ADDED_ARGUMENTS.items() for item in (f"--{name}", str(value))),
            "--output_dir", str(output_dir / run.name),
        ]  # fmt: skip


@dataclass(frozen=True)
class PlannedFinetuning:
    """One fine-tuning of the study: a pretraining run's weights (`init` "pretrained") or its architecture from random
    weights (`init` "scratch", the control), on one task, with one fine-tuning seed."""

    run: PlannedRun
    task: str
    init: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.run.name}/{self.task}/{run_name(self.init, seed=self.seed)}"


def finetunings(plan: Plan) -> list[PlannedFinetuning]:
    """Every planned fine-tuning: each run of the fine-tuned budgets from its weights with the plan's fine-tuning seed,
    and per arm the random-initialisation control (the architecture of the arm's first seed) with each of its seeds."""
    spec = plan.finetuning or {}
    runs = [run for run in plan.runs() if run.budget in spec.get("budgets", ())]
    planned = []
    for task in spec.get("tasks", {}):
        planned += [PlannedFinetuning(run, task, "pretrained", spec["pretrained_seed"]) for run in runs]
        for arm in plan.arms.values():
            control = next(run for run in runs if run.arm == arm and run.seed == plan.seeds[0])
            planned += [PlannedFinetuning(control, task, "scratch", seed) for seed in spec["scratch_seeds"]]
    return planned


def finetuning_argv(plan: Plan, step: PlannedFinetuning, output_dir: Path) -> list[str]:
    """The `recipes.finetune` command of one planned fine-tuning (a learning rate chosen on validation from the grid)."""
    spec = plan.finetuning
    return [
        "--model", str(output_dir / step.run.name), "--task", step.task, "--seed", str(step.seed),
        *(["--from_scratch"] if step.init == "scratch" else []),
        "--learning_rates", *(f"{rate:g}" for rate in spec["learning_rates"]),
        *spec["args"], *spec["tasks"][step.task],
        "--output_dir", str(output_dir / "finetuned" / step.name),
    ]  # fmt: skip
