"""What a push sends, checked and staged before any network call: per repo, the model files, results and card of a
run directory (and of each checkpoint, as branches), from one run or a whole zoo."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import ModelCard
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from recipes.cards.committed import regenerate, resolve_recorded
from recipes.cards.healed import build_healed_card, is_healed_run
from recipes.cards.markdown import percent
from recipes.cards.model_card import CARD_FILE, build_card
from recipes.data.input_files import InvalidInputFileError, check_weights, read_config
from recipes.records import BUDGET_FILE, DOWNSTREAM_DIR, FRONTIER_PLOT_FILE, CardProvenance, PretrainingRecord
from recipes.run_folder.recorded_runs import RecordedRun, pretraining_runs, repo_names
from recipes.training.curves import CURVE_FILE
from recipes.training.distillation import AGREEMENT_CURVE_FILE

# What a user needs to load a model; every saved folder and checkpoint of the recipe has them.
MODEL_FILES = (
    "model.safetensors", "config.json", "configuration_hybrid_bert.py", "modeling_hybrid_bert.py",
    "tokenizer.json", "tokenizer_config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
)  # fmt: skip
# Tokenizer files some tokenizers save and others do not.
OPTIONAL_MODEL_FILES = ("special_tokens_map.json", "vocab.txt")
RESULT_FILES = (BUDGET_FILE, CURVE_FILE, "mlm_curve.png")
HEALED_RESULT_FILES = (BUDGET_FILE, AGREEMENT_CURVE_FILE, "agreement_curve.png")
AUTO_MAP_CLASSES = ("AutoConfig", "AutoModelForMaskedLM")
MAIN = "main"
CHECKPOINT_PREFIX = "checkpoint-"
BRANCH_PREFIX = "step-"
DEFAULT_COLLECTION = "HybridBERT Zoo"


class PushError(RuntimeError):
    """A push that cannot go ahead; the message says why and what to do."""


@dataclass
class PushArguments:
    repo_id: str | None = field(default=None, metadata={"help": "ORG/NAME: the repo RUN_DIR is published to"})
    zoo: str | None = field(default=None, metadata={"help": "Publish every run directory in this folder (a repo each)"})
    cards: str | None = field(
        default=None,
        metadata={
            "help": "Publish the committed cards of this folder (model_cards): each card's repo, with the weights of "
            "the run folder of the card's run name under --weights_dir"
        },
    )
    weights_dir: str | None = field(default=None, metadata={"help": "With --cards: where the runs' weights are"})
    namespace: str | None = field(default=None, metadata={"help": "With --zoo: the Hub user or organisation"})
    collection: str = field(default=DEFAULT_COLLECTION, metadata={"help": "With --zoo: the collection's title"})
    private: bool = field(default=False, metadata={"help": "Create the repos (and the collection) private"})
    dry_run: bool = field(default=False, metadata={"help": "Check, stage and print the plan; no network call"})
    with_checkpoints: bool = field(default=False, metadata={"help": "Push each checkpoint-N as branch step-N"})
    benchmark: str | None = field(default=None, metadata={"help": "A recipes.benchmark JSON for the cards"})
    heal_table: str | None = field(
        default=None, metadata={"help": "For a distillation run: the healing study's table.json, for its card"}
    )
    frontier_table: str | None = field(
        default=None,
        metadata={"help": "For a distillation run: the healing frontier's table.json, for its card and plot"},
    )


@dataclass(frozen=True)
class Upload:
    """One `upload_folder`: files copied from `source`, files attached from elsewhere under their own names (a plot
    the card shows) and the card, on main, to a revision of a repo."""

    revision: str
    source: Path
    copied: tuple[str, ...]
    card: ModelCard | None = None
    attached: tuple[Path, ...] = ()

    @property
    def files(self) -> list[str]:
        return sorted([*self.copied, *(path.name for path in self.attached), *([CARD_FILE] if self.card else [])])


@dataclass(frozen=True)
class RepoPlan:
    repo_id: str
    run_dir: Path
    summary: str  # one line: the commit message and the collection note
    uploads: tuple[Upload, ...]  # main first, then one per checkpoint branch


@dataclass(frozen=True)
class PushPlan:
    repos: tuple[RepoPlan, ...]
    private: bool
    namespace: str | None = None
    collection: str | None = None  # the title; only a zoo is grouped


# --- the plan: everything checked before any network call -----------------------------------------------------


def model_files(folder: Path) -> list[str]:
    """The loadable model in `folder`; refuses when a file or the config's `auto_map` is missing, or when the weights
    do not open with safetensors or do not match the config."""
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise PushError(f"{folder} is missing {', '.join(missing)}: it is not a complete saved model.")
    try:
        auto_map = read_config(folder).get("auto_map", {})
        check_weights(folder)
    except InvalidInputFileError as error:
        raise PushError(str(error)) from None
    unmapped = [name for name in AUTO_MAP_CLASSES if name not in auto_map]
    if unmapped:
        raise PushError(
            f"{folder}/config.json has no auto_map entry for {', '.join(unmapped)}: it cannot load as remote code."
        )
    return [*MODEL_FILES, *(name for name in OPTIONAL_MODEL_FILES if (folder / name).is_file())]


def result_files(run_dir: Path) -> list[str]:
    missing = [name for name in RESULT_FILES if not (run_dir / name).is_file()]
    if missing:
        raise PushError(f"{run_dir} is missing {', '.join(missing)}: only a finished pretraining run can be published.")
    downstream = sorted(path.relative_to(run_dir).as_posix() for path in run_dir.glob(f"{DOWNSTREAM_DIR}/*/*.json"))
    return [*RESULT_FILES, *downstream]


def checkpoint_uploads(run_dir: Path) -> list[Upload]:
    """Each `checkpoint-N` of the run as branch `step-N`, in step order."""
    numbers = [path.name.removeprefix(CHECKPOINT_PREFIX) for path in run_dir.glob(f"{CHECKPOINT_PREFIX}*")]
    steps = sorted(int(number) for number in numbers if number.isdigit())
    if not steps:
        raise PushError(f"--with-checkpoints: {run_dir} holds no {CHECKPOINT_PREFIX}N folder.")
    uploads = []
    for step in steps:
        checkpoint = run_dir / f"{CHECKPOINT_PREFIX}{step}"
        uploads.append(Upload(f"{BRANCH_PREFIX}{step}", checkpoint, tuple(model_files(checkpoint))))
    return uploads


def check_repo_id(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise PushError(f"Invalid repo id {repo_id!r}: {error}") from None
    if "/" not in repo_id:
        raise PushError(f"Repo id {repo_id!r} has no namespace: use ORG/NAME (your user name or an organisation).")


def plan_healed_repo(
    run_dir: Path, repo_id: str, card: ModelCard | None, heal_table: str | None, frontier_table: str | None
) -> RepoPlan:
    """A student healed by distillation: the model, its healing records and a sentence-encoder card (`card`, else one
    generated beside the tables), with the frontier's plot when the card places it on the frontier."""
    missing = [name for name in HEALED_RESULT_FILES if not (run_dir / name).is_file()]
    if missing:
        raise PushError(
            f"{run_dir} is missing {', '.join(missing)}: only a finished distillation run can be published."
        )
    downstream = sorted(path.relative_to(run_dir).as_posix() for path in run_dir.glob(f"{DOWNSTREAM_DIR}/*/*.json"))
    copied = [*model_files(run_dir), *HEALED_RESULT_FILES, *downstream]
    try:
        card = card or build_healed_card(run_dir, repo_id, heal_table, frontier_table)
    except ValueError as error:
        raise PushError(str(error)) from None
    attached = ()
    if frontier_table is not None:
        plot = Path(frontier_table).parent / FRONTIER_PLOT_FILE
        if not plot.is_file():
            raise PushError(
                f"{plot} is missing: the card shows the frontier's plot (python -m studies.healing.frontier_table)."
            )
        attached = (plot,)
    spent = PretrainingRecord.read(run_dir)
    summary = (
        f"{spent.variant} healed from {spent.run_record.training['teacher']} by distillation: {spent.steps:,} steps, "
        f"{'evaluated beside its teacher' if card.data.eval_results else 'agreement curve only'}"
    )
    return RepoPlan(repo_id, run_dir, summary, (Upload(MAIN, run_dir, tuple(copied), card, attached),))


def plan_repo(
    run_dir: str | Path,
    repo_id: str,
    with_checkpoints: bool,
    benchmark: str | None,
    heal_table: str | None = None,
    card: ModelCard | None = None,
    frontier_table: str | None = None,
) -> RepoPlan:
    """One pretraining (or healed) run's repo; `card` is the committed card to send, else one is generated."""
    run_dir = Path(run_dir)
    check_repo_id(repo_id)
    if not (run_dir / BUDGET_FILE).is_file():
        raise PushError(f"{run_dir} is not a pretraining run directory (it has no {BUDGET_FILE}).")
    if is_healed_run(run_dir):
        if with_checkpoints:
            raise PushError(
                f"--with-checkpoints publishes a pretraining run's checkpoints; {run_dir} is a distillation run."
            )
        return plan_healed_repo(run_dir, repo_id, card, heal_table, frontier_table)
    copied = [*model_files(run_dir), *result_files(run_dir)]
    card = card or build_card(run_dir, repo_id, benchmark)
    if not card.data.eval_results:
        raise PushError(f"The card of {run_dir} has no results: {CURVE_FILE} holds no held-out evaluation.")
    run = RecordedRun.read(run_dir)
    spent = run.record
    summary = (
        f"{spent.variant} ({spent.size}), budget {spent.budget}: {spent.steps:,} steps, "
        f"held-out MLM accuracy {percent(run.curve[-1]['accuracy'])}, {len(run.downstream)} downstream record(s)"
    )
    uploads = [Upload(MAIN, run_dir, tuple(copied), card), *(checkpoint_uploads(run_dir) if with_checkpoints else [])]
    return RepoPlan(repo_id, run_dir, summary, tuple(uploads))


def plan_carded_repos(cards_dir: Path, weights_dir: Path, with_checkpoints: bool) -> tuple[RepoPlan, ...]:
    """The committed cards whose run has a folder of the same name under `weights_dir`, each sent as committed: a card
    that is not what its records give now, or a folder that is not the run its card describes, is refused."""
    plans = []
    for card_path in sorted(cards_dir.glob(f"*/{CARD_FILE}")):
        provenance = CardProvenance.from_card(card_path)
        run_dir = weights_dir / Path(provenance.run_dir).name
        if not run_dir.is_dir():
            continue
        text = card_path.read_text(encoding="utf-8")
        if regenerate(card_path) != text:
            raise PushError(f"{card_path} is not what its records give now: regenerate it before publishing.")
        described = PretrainingRecord.read(resolve_recorded(provenance.run_dir)).run_record.run_key()
        if not PretrainingRecord.exists(run_dir) or PretrainingRecord.read(run_dir).run_record.run_key() != described:
            raise PushError(f"{run_dir} is not the run {card_path} describes ({provenance.run_dir}'s {BUDGET_FILE}).")
        tables = {
            "heal_table": resolve_recorded(provenance.table),
            "frontier_table": resolve_recorded(provenance.frontier_table),
        }
        plans.append(plan_repo(run_dir, provenance.repo_id, with_checkpoints, None, card=ModelCard(text), **tables))
    if not plans:
        raise PushError(f"No card in {cards_dir} names a run folder under {weights_dir}.")
    return tuple(plans)


def make_plan(run_dir: str | None, args: PushArguments) -> PushPlan:
    if sum(map(bool, (run_dir, args.zoo, args.cards))) != 1:
        raise PushError(
            "Give one of RUN_DIR (with --repo-id ORG/NAME), --zoo ZOO_DIR (with --namespace ORG) or --cards CARDS_DIR "
            "(with --weights_dir)."
        )
    if args.cards:
        if not args.weights_dir or args.repo_id or args.namespace:
            raise PushError("--cards needs --weights_dir and takes no --repo-id or --namespace (the cards name them).")
        repos = plan_carded_repos(Path(args.cards), Path(args.weights_dir), args.with_checkpoints)
        namespaces = sorted({repo.repo_id.split("/")[0] for repo in repos})
        return (
            PushPlan(repos, args.private, namespaces[0], args.collection)
            if len(namespaces) == 1
            else PushPlan(repos, args.private)
        )
    if run_dir:
        if not args.repo_id:
            raise PushError("RUN_DIR needs --repo-id ORG/NAME.")
        plan = plan_repo(
            run_dir,
            args.repo_id,
            args.with_checkpoints,
            args.benchmark,
            args.heal_table,
            frontier_table=args.frontier_table,
        )
        return PushPlan((plan,), args.private)
    if not args.namespace or args.repo_id:
        raise PushError("--zoo needs --namespace ORG and takes no --repo-id (repo names come from the runs).")
    run_dirs = pretraining_runs(args.zoo)
    if not run_dirs:
        raise PushError(f"{args.zoo} holds no run directory (a subfolder with {BUDGET_FILE}).")
    try:
        repo_ids = [f"{args.namespace}/{name}" for name in repo_names(run_dirs).values()]
    except ValueError as error:
        raise PushError(f"{args.zoo}: {error}") from None
    repos = tuple(
        plan_repo(run, repo_id, args.with_checkpoints, args.benchmark) for run, repo_id in zip(run_dirs, repo_ids)
    )
    return PushPlan(repos, args.private, args.namespace, args.collection)


def stage(plan: PushPlan, staging_root: Path) -> dict[tuple[str, str], Path]:
    """Copies every upload's files into its own folder; returns {(repo_id, revision): folder}."""
    staged = {}
    for repo in plan.repos:
        for upload in repo.uploads:
            folder = staging_root / repo.repo_id / upload.revision
            for name in upload.copied:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(upload.source / name, folder / name)
            for path in upload.attached:
                shutil.copy2(path, folder / path.name)
            if upload.card:
                upload.card.save(folder / CARD_FILE)
            staged[repo.repo_id, upload.revision] = folder
    return staged


def describe(plan: PushPlan, staged: dict[tuple[str, str], Path], dry_run: bool) -> str:
    lines = [f"Push plan{' (dry run: nothing is sent)' if dry_run else ''}:"]
    for repo in plan.repos:
        visibility = "private" if plan.private else "public"
        lines.append(f"- {repo.repo_id} ({visibility}) from {repo.run_dir}: {repo.summary}")
        for upload in repo.uploads:
            folder = staged[repo.repo_id, upload.revision]
            lines.append(f"  {upload.revision} ({upload.source.name}), {len(upload.files)} files:")
            lines += [f"    {name}  {(folder / name).stat().st_size:,} bytes" for name in upload.files]
    if plan.collection:
        lines.append(f"- collection {plan.collection!r} in {plan.namespace}: {len(plan.repos)} repo(s)")
    return "\n".join(lines)


# --- the Hub: fail fast, then publish --------------------------------------------------------------------------
