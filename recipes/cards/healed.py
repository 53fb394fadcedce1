"""Model cards of healed students (`recipes/distill.py` runs): a hybrid made from a pretrained BERT and healed by
distillation, published as a sentence encoder beside its teacher.

A card is a pure function of the run directory (`budget.json`, `agreement_curve.json`, `config.json`) and, optionally,
the healing study's table (`results/heal/table.json`, `studies/healing/table.py`), whose row for the run's setting gives
the evaluation against the teacher, and the healing frontier's table (`results/heal/frontier/table.json`,
`studies/healing/frontier_table.py`), whose point of the run's layout places it on the frontier. It is rendered from `model_cards/template_healed.md` through
`huggingface_hub.ModelCard.from_template`, the shared parts (model description, what was spent) as `recipes/cards/model_card.py`
writes them for pretraining runs.

    python -m recipes.cards.healed RUN_DIR --repo_id ORG/NAME [--table results/heal/table.json] \
        [--frontier_table results/heal/frontier/table.json] --output README.md
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from modeling import HybridBertConfig
from recipes.cards.markdown import ratio_and_range, seconds, share_interval, signed_interval, threads
from recipes.cards.model_card import (
    BASE_TAGS,
    CARDS_DIR,
    LICENSE,
    layout_text,
    parameter_counts,
    render_card,
    settings_text,
    shared_machine_text,
    spent_rows,
    variant_description,
)
from recipes.cards.sources import base_model, pretraining_corpus, task_hub_id
from recipes.environment import portable_path
from recipes.evaluation.healing_rows import TEACHER, agreement_text, gain_cell, protocol_text, row_name
from recipes.evaluation.probing import describe_student
from recipes.records import (
    FRONTIER_PLOT_FILE,
    CardProvenance,
    DistillationRecord,
    FrontierTable,
    HealingTable,
    PretrainingRecord,
)
from recipes.training.arguments import parse_args
from recipes.training.curves import load_curve
from recipes.training.distillation import AGREEMENT_CURVE_FILE

TEMPLATE_PATH = CARDS_DIR / "template_healed.md"
HEAL_TAGS = ("sentence-transformers", "feature-extraction", "distillation")


def is_healed_run(run_dir: str | Path) -> bool:
    """Whether a run directory holds a student healed by distillation (not a pretraining run)."""
    return PretrainingRecord.read(run_dir).run_record.training.get("objective") == "distillation"


def share_text(result: dict | None, with_share: bool = True) -> str:
    if result is None:
        return "–"
    spread = f" ± {100 * result['sd']:.1f}" if result["sd"] is not None else ""
    text = f"{100 * result['mean']:.1f}%{spread}"
    share = result.get("share_of_teacher")
    if share is None or not with_share:
        return text
    interval = f" [{100 * share['low']:.1f}, {100 * share['high']:.1f}]" if "low" in share else ""
    return f"{text} ({100 * share['mean']:.1f}% of the teacher's{interval})"


def evaluation_context(table_json: str | Path, row: str) -> dict | None:
    """The table's row for this model's setting beside the teacher's, or None when the table has no such row."""
    table = HealingTable.read(table_json)
    entry, teacher = table.rows.get(row), table.rows.get(TEACHER)
    if entry is None or teacher is None:
        return None
    tasks, seeds = [], set()
    for task, scores in entry["tasks"].items():
        for kind in ("probe", "finetuned"):
            seeds |= set((scores[kind] or {}).get("seeds", []))
        tasks.append(
            {
                "name": task,
                "probe": share_text(scores["probe"]),
                "teacher_probe": share_text(teacher["tasks"][task]["probe"], with_share=False),
                "finetuned": share_text(scores["finetuned"]),
                "teacher_finetuned": share_text(teacher["tasks"][task]["finetuned"], with_share=False),
                "agreement": agreement_text(scores["agreement"]),
                "probe_mean": (scores["probe"] or {}).get("mean"),
                "finetuned_mean": (scores["finetuned"] or {}).get("mean"),
                "seed_count": len((scores["probe"] or {}).get("seeds", [])),
            }
        )
    ratio = entry["latency_ratio"]
    healing = table.healing.get(row)
    return {
        "source": f"`{portable_path(table_json)}`",
        "row": row,
        "seeds": ", ".join(map(str, sorted(seeds))),
        "confidence": f"{100 * table.confidence:.0f}%",
        "tasks": tasks,
        "latency_seq": table.latency_seq,
        "latency_ratio": "–" if ratio is None else f"{ratio:.2f}×",
        "latency_same_implementation": [
            {"shape": shape.replace("x", " × "), "ratio": ratio_and_range(values)}
            for shape, values in (entry.get("latency_vs_same_implementation") or {}).items()
        ],
        "healing_against": healing["against"] if healing else None,
        "healing": [
            {"name": task, "probe": gain_cell(gains["probe"]), "finetuned": gain_cell(gains["finetuned"])}
            for task, gains in (healing or {}).get("tasks", {}).items()
        ],
        "finetuning": "; ".join(protocol_text(task, settings) for task, settings in table.finetuning.items()),
    }


def frontier_share_text(task: dict) -> str:
    """ "96.4% ± 1.3 (98.7% [96.92, 100.2] of the teacher's)" from a frontier arm's task entry, "pending" before
    any: the lower bound as the frontier's table and README give it."""
    accuracy, share = task["accuracy"], task["share_of_teacher"]
    if share is None:
        return "pending"
    return f"{share_text(accuracy)} ({share_interval(share)} of the teacher's)"


def verdict_word(keeps: bool | None) -> str:
    return {True: "yes", False: "no", None: "pending (not every seed is in)"}[keeps]


def frontier_context(frontier_json: str | Path, mixer_types: list[str]) -> dict:
    """The healing frontier's point of this layout (`studies/healing/frontier_table.py`): both arms' fine-tuned shares
    of the teacher's accuracy, what healing bought, the verdicts and the latency."""
    table = FrontierTable.read(frontier_json)
    found = [(label, point) for label, point in table.points.items() if point["layout"] == mixer_types]
    if not found:
        raise ValueError(f"No point of the frontier table {frontier_json} has this model's layout {mixer_types}.")
    label, point = found[0]
    teacher, arms = table.denominators["teacher"], point["arms"]
    target = point["meets_latency_target"]
    decided = (
        f" (geometric mean {target['ratio']:.3f}× [{target['low']:.3f}, {target['high']:.3f}] over its "
        f"{target['measurements']} measurements that decide it)"
        if "low" in target
        else ""
    )
    return {
        "source": f"`{portable_path(frontier_json)}`",
        "plot": FRONTIER_PLOT_FILE,
        "point": label,
        "mixer": point["mixer"],
        "k": point["k"],
        "threshold": f"{100 * table.threshold:.0f}%",
        "tasks": [
            {
                "name": task,
                "healed": frontier_share_text(arms["healed"]["tasks"][task]),
                "unhealed": frontier_share_text(arms["unhealed"]["tasks"][task]),
                "teacher": share_text(teacher[task], with_share=False),
                "gain": "pending" if gain is None else signed_interval(gain, 100, 1),
                "healed_mean": arms["healed"]["tasks"][task]["accuracy"]["mean"],
            }
            for task, gain in point["healing_gain"].items()
        ],
        "keeps": {arm: verdict_word(arms[arm]["keeps"]) for arm in ("healed", "unhealed")},
        "latency_shape": table.latency_shape.replace("x", " × "),
        "latency": ratio_and_range(point["latency_ratios"]),
        "latency_target": f"{target['verdict']}{decided}",
    }


def task_result(task: str, metric_name: str, accuracy: float) -> EvalResult:
    hub_id = task_hub_id(task)
    return EvalResult(
        task_type="text-classification",
        task_name="Text classification",
        dataset_type=hub_id or task,
        dataset_name=task if hub_id else f"{task} (offline substitute, not a Hub dataset)",
        dataset_split="test",
        metric_type="accuracy",
        metric_name=metric_name,
        metric_value=round(accuracy, 4),
    )


def eval_results(evaluation: dict | None, frontier: dict | None = None) -> list[EvalResult]:
    """model-index: each task's frozen-embedding probe accuracy and fine-tuned accuracy (means over the row's seeds),
    and on the healing frontier the healed arm's fine-tuned accuracy (mean over the point's seeds)."""
    results = []
    for task in (evaluation or {}).get("tasks", []):
        for key, label in (("probe_mean", "frozen-embedding probe"), ("finetuned_mean", "fine-tuned")):
            if task[key] is not None:
                results.append(
                    task_result(task["name"], f"accuracy ({label}, mean over the setting's seeds)", task[key])
                )
    for task in (frontier or {}).get("tasks", []):
        if task["healed_mean"] is not None:
            name = "accuracy (fine-tuned, mean over the frontier point's seeds)"
            results.append(task_result(task["name"], name, task["healed_mean"]))
    return results


def build_healed_card(
    run_dir: str | Path,
    repo_id: str,
    table_json: str | Path | None = None,
    frontier_json: str | Path | None = None,
) -> ModelCard:
    """The card of a distillation run directory, to be published as `repo_id`, beside the healing study's table and
    (for a student of the healing frontier) the frontier's table, whose plot then travels with it."""
    run_dir = Path(run_dir)
    spent = DistillationRecord.read(run_dir)
    if spent.run_record.training.get("objective") != "distillation":
        raise ValueError(f"{run_dir} is not a distillation run; its card is recipes/cards/model_card.py's.")
    config = HybridBertConfig.from_pretrained(run_dir)
    training = spent.run_record.training
    teacher = training["teacher"]
    curve = load_curve(run_dir, AGREEMENT_CURVE_FILE)
    row = row_name(describe_student(run_dir))
    evaluation = evaluation_context(table_json, row) if table_json else None
    frontier = frontier_context(frontier_json, config.mixer_types) if frontier_json else None
    corpus = pretraining_corpus(spent.arguments["data"])
    name = repo_id.split("/")[-1]
    teacher_hub_id = base_model(teacher)
    teacher_text = f"`{teacher_hub_id}`" if teacher_hub_id else f"the BERT `{Path(teacher).name}`"
    settings = "its teacher's settings" if training["keep_source_settings"] else f"`{spent.variant}`'s own settings"
    agreement = f"{curve[-1]['agreement']:.3f}" if curve else "–"
    provenance = CardProvenance(
        run_dir=portable_path(run_dir),
        repo_id=repo_id,
        table=portable_path(table_json) if table_json else None,
        frontier_table=portable_path(frontier_json) if frontier_json else None,
    )
    evaluated = spent.arguments["data"].get("max_eval_samples")
    return render_card(
        ModelCardData(
            model_name=name,
            language="en",
            license=LICENSE,
            library_name="sentence-transformers",
            pipeline_tag="feature-extraction",
            tags=[*BASE_TAGS, *HEAL_TAGS, spent.variant],
            base_model=teacher_hub_id,
            eval_results=eval_results(evaluation, frontier) or None,
        ),
        TEMPLATE_PATH,
        provenance,
        summary=(
            f"A `{spent.variant}` hybrid sentence encoder made from {teacher_text} (HBERT §4.4: every weight with a "
            f"counterpart copied, the new mixers fresh) with {settings}, and healed by distillation from that "
            f"teacher for {spent.steps:,} steps on {spent.device} ({threads(spent.threads)}): held-out agreement "
            f"with the teacher {agreement}. Generated from the run's records by `recipes/cards/healed.py`; do not "
            "edit by hand."
        ),
        variant=spent.variant,
        variant_description=variant_description(spent.variant, training, config.mixer_types),
        dimensions=(
            f"{config.num_hidden_layers} layers × hidden {config.hidden_size}, {config.num_attention_heads} heads, "
            f"FFN {config.intermediate_size}, vocabulary {config.vocab_size:,}, {config.max_position_embeddings} "
            "positions"
        ),
        layout=layout_text(config.mixer_types),
        settings=settings_text(config),
        parameters=parameter_counts(config),
        initialisation=f"from {teacher_text}",
        loss_weights=", ".join(f"{key} {value:g}" for key, value in training["loss_weights"].items()),
        spent=spent_rows(spent),
        corpus={
            "description": corpus.description,
            "held_out_short": f"{'the first ' + format(evaluated, ',') if evaluated else 'all'} held-out blocks of "
            f"{spent.arguments['data']['max_seq_length']} tokens of that text (unmasked)",
        },
        curve=[
            {
                "elapsed": seconds(point["elapsed_s"]),
                "step": f"{point['step']:,}",
                "tokens_seen": f"{point['tokens_seen']:,}",
                "agreement": f"{point['agreement']:.4f}",
                "loss": f"{point['loss']:.4f}",
            }
            for point in curve
        ],
        evaluation=evaluation,
        frontier=frontier,
        seed=spent.seed,
        budget_limitation=(
            f"This checkpoint was healed for {spent.steps:,} steps ({seconds(spent.elapsed_s)} of training) on "
            f"{threads(spent.threads)} of {spent.device}."
        ),
        shared_machine=shared_machine_text(spent.run_record.load_average),
    )


def write_healed_card(
    run_dir: str | Path,
    repo_id: str,
    path: str | Path,
    table_json: str | Path | None = None,
    frontier_json: str | Path | None = None,
) -> Path:
    build_healed_card(run_dir, repo_id, table_json, frontier_json).save(path)
    return Path(path)


@dataclass
class HealedCardArguments:
    run_dir: str = field(metadata={"help": "A recipes/distill.py output directory"})
    repo_id: str = field(metadata={"help": "ORG/NAME the card is written for"})
    output: str = field(metadata={"help": "Where the card (README.md) goes"})
    table: str | None = field(
        default=None, metadata={"help": "The healing study's table.json (studies/healing/table.py)"}
    )
    frontier_table: str | None = field(
        default=None, metadata={"help": "The healing frontier's table.json (studies/healing/frontier_table.py)"}
    )


def main(argv: list[str] | None = None) -> Path:
    (args,) = parse_args((HealedCardArguments,), argv)
    return write_healed_card(args.run_dir, args.repo_id, args.output, args.table, args.frontier_table)


if __name__ == "__main__":
    main()
