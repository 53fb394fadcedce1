"""Model cards generated from a run directory and the results recorded against it.

A card is a pure function of a pretraining run directory (`budget.json`, `mlm_curve.json`, `config.json` and the
downstream records in `downstream/`) and, optionally, a benchmark JSON (`recipes.benchmark`): regenerating it from
the same files gives the same bytes. It is rendered from `model_cards/template.md` through
`huggingface_hub.ModelCard.from_template`, with the metadata (and its `model-index`) built by `ModelCardData` and
`EvalResult`. Only small JSON files are read: a card can be regenerated where the weights are absent.

Each card names the run directory, repo id and benchmark it was generated from (a comment at the top of its body),
so `recipes.cards.committed` and the tests can regenerate it.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from modeling import MIXER_SPECS, VARIANTS, HybridBertConfig, HybridBertForMaskedLM
from recipes.cards.markdown import markdown_table, mean_and_spread, percent, seconds, threads, tokens
from recipes.cards.sources import Corpus, base_model, pretraining_corpus, task_hub_id
from recipes.cards.study import study_context
from recipes.data.tasks import TASKS
from recipes.environment import REPO_ROOT, portable_path
from recipes.models.parameters import components, hybrid_breakdown
from recipes.records import BenchmarkRecord, CardProvenance, FinetuningRecord, PretrainingRecord
from recipes.run_folder.recorded_runs import RecordedRun

CARDS_DIR = REPO_ROOT / "model_cards"
TEMPLATE_PATH = CARDS_DIR / "template.md"
CARD_FILE = "README.md"
LICENSE = "apache-2.0"  # the project's license (pyproject.toml), under which the weights are published
BASE_TAGS = ("hybrid-bert", "custom_code")
# A machine-readable comment at the top of a card's body: which inputs regenerate it.


# --- the card's parts -----------------------------------------------------------------------------------------


def variant_description(variant: str, training: dict, mixer_types: list[str]) -> str:
    """The variant as its paper defines it, and where this model departs from it: a layout of its own (given by
    `--config_overrides mixer_types=...`), or a source BERT's settings kept (the settings row then differs from the
    paper's)."""
    spec = VARIANTS[variant]
    departures = []
    if mixer_types != spec.layout(len(mixer_types)):
        departures.append("places these mixers in a layout of its own instead (the layer layout row)")
    if training.get("keep_source_settings"):
        departures.append("keeps its source BERT's settings instead (the settings row)")
    return " This model ".join([spec.description, " and ".join(departures)]) + "." if departures else spec.description


def step_capped(training: dict) -> bool:
    """Whether the run's budget is its step count (`--max_steps`), the clock only a cap."""
    return training["schedule"].startswith("steps-")


def layout_text(mixer_types: list[str]) -> str:
    letters = " ".join(MIXER_SPECS[mixer].letter for mixer in mixer_types)
    legend = ", ".join(f"{spec.letter} = {spec.label}" for spec in MIXER_SPECS.values())
    return f"`{letters}` (bottom to top; {legend})"


def variants_table(num_layers: int = 12) -> list[str]:
    """The README's table of the named variants, from their specs: layout at `num_layers` layers and description."""
    rows = [
        [
            f"`{name}`",
            "`" + " ".join(MIXER_SPECS[mixer].letter for mixer in spec.layout(num_layers)) + "`",
            spec.description,
        ]
        for name, spec in VARIANTS.items()
    ]
    legend = ", ".join(f"{spec.letter} = {spec.label}" for spec in MIXER_SPECS.values())
    return markdown_table(["variant", f"layout at {num_layers} layers ({legend})", "what it is"], rows)


def settings_text(config: HybridBertConfig) -> str:
    bias = "with" if config.ffn_bias else "without"
    return (
        f"{config.norm_style}-LN, {config.hidden_act}, FFN {bias} bias, {config.position_embedding_type} "
        f"positions, dropout {config.hidden_dropout_prob:g}"
    )


def parameter_counts(config: HybridBertConfig) -> dict:
    """Encoder components (recipes/models/parameters.py) and the MLM model's total, counted on the meta device."""
    breakdown = hybrid_breakdown(config)
    with torch.device("meta"):
        masked_lm = HybridBertForMaskedLM(config)
    return {
        "encoder": f"{breakdown['total']:,}",
        "masked_lm": f"{masked_lm.num_parameters():,}",
        "components": [{"name": name, "count": f"{breakdown[name]:,}"} for name in components() if breakdown[name]],
    }


def initialisation_text(init_from: str | None) -> str:
    if not init_from:
        return "random (pretrained from scratch)"
    hub_id = base_model(init_from)
    if hub_id:
        return f"from `{hub_id}` (HBERT §4.4: embeddings and the self-attention layers at the same indices are copied)"
    return f"from the local BERT folder `{Path(init_from).name}` (HBERT §4.4)"


def utilisation_text(utilisation: dict | None) -> str:
    """MFU against the measured peak ("–" for runs recorded before MFU was)."""
    if utilisation is None:
        return "–"
    peak = f"{utilisation['matmul_peak_flops'] / 1e9:,.0f} GFLOP/s"
    return (
        f"{100 * utilisation['mfu']:.1f}% of the measured {utilisation['matmul_dtype']} matmul peak ({peak} per device)"
    )


def accelerate_settings_text(training: dict) -> str:
    """What accelerate ran ("–" for runs recorded before it was recorded)."""
    if "mixed_precision" not in training:
        return "–"
    optimizer = training["optimizer"] or "no optimizer step in the process that finished the run"
    return f"`{training['mixed_precision']}`, torch.compile {training['torch_compile'] or 'off'}, {optimizer}"


def spent_rows(spent: PretrainingRecord) -> list[tuple[str, str]]:
    record, training = spent.run_record, spent.run_record.training
    paused = ", ".join(f"{reason} {seconds(value)}" for reason, value in spent.paused_breakdown_s.items())
    per_step = f"{training['samples_per_step']} per step × {training['max_seq_length']} tokens"
    if step_capped(training):
        budget = ("budget", f"`--max_steps` (the schedule's length), the clock capped at `{spent.budget}`")
        elapsed = ("elapsed (training)", seconds(spent.elapsed_s))
    else:
        budget = ("budget", f"`{spent.budget}` = {seconds(spent.budget_s)} of training")
        elapsed = ("elapsed (training)", f"{seconds(spent.elapsed_s)} (overshoot {spent.overshoot_s:+.1f} s)")
    return [
        budget,
        elapsed,
        ("paused (not counted)", f"{seconds(spent.paused_s)}: {paused}"),
        ("data preparation (before the clock)", seconds(spent.data_preparation_s)),
        ("stopped by", f"`{spent.stop_reason}`"),
        *([("resumed from a checkpoint at step", ", ".join(map(str, spent.resumed_at)))] if spent.resumed_at else []),
        ("optimizer steps", f"{spent.steps:,}"),
        ("samples", f"{spent.samples:,} ({per_step})"),
        ("tokens seen", f"{spent.tokens_seen:,}"),
        ("tokens/s", f"{spent.tokens_per_s:,.0f}"),
        ("model-FLOPs utilisation", utilisation_text(spent.utilisation)),
        ("precision, compilation, optimizer", accelerate_settings_text(training)),
        ("hardware", f"{spent.device}, {threads(spent.threads)}, {spent.world_size} process(es)"),
        ("learning rate", f"{training['learning_rate']:g}, schedule `{training['schedule']}`"),
        ("seed", str(record.seed)),
        ("code", f"git `{record.git_commit}`"),
        ("versions", ", ".join(f"{name} {version}" for name, version in record.versions.items())),
    ]  # fmt: skip


def curve_rows(curve: list[dict]) -> list[dict]:
    return [
        {
            "elapsed": seconds(point["elapsed_s"]),
            "step": f"{point['step']:,}",
            "tokens_seen": f"{point['tokens_seen']:,}",
            "accuracy": percent(point["accuracy"]),
            "loss": f"{point['loss']:.3f}",
        }
        for point in curve
    ]


def downstream_rows(records: list[FinetuningRecord]) -> list[dict]:
    """One row per task this checkpoint was fine-tuned on, with the baselines recorded beside it."""
    rows = []
    for task_name in sorted({record.task for record in records}):
        of_task = [record for record in records if record.task == task_name]
        pretrained = [record for record in of_task if record.init == "pretrained"]
        if not pretrained:
            continue  # only a from-scratch baseline: nothing about this checkpoint
        scratch = [record for record in of_task if record.init == "scratch"]
        hub_id = task_hub_id(task_name)
        rows.append(
            {
                "name": task_name,
                "description": TASKS[task_name].description,
                "hub_note": f"Hub dataset: `{hub_id}`." if hub_id else "An offline substitute, not a Hub dataset.",
                "hub_id": hub_id,
                "accuracy": mean_and_spread([record.test["accuracy"] for record in pretrained]),
                "macro_f1": mean_and_spread([record.test["macro_f1"] for record in pretrained]),
                "accuracy_mean": statistics.mean(record.test["accuracy"] for record in pretrained),
                "macro_f1_mean": statistics.mean(record.test["macro_f1"] for record in pretrained),
                "seed_count": len(pretrained),
                "seeds": ", ".join(str(record.seed) for record in pretrained),
                "train_samples": ", ".join(sorted({f"{record.train_samples:,}" for record in pretrained})),
                "scratch_accuracy": mean_and_spread([r.test["accuracy"] for r in scratch]) if scratch else "–",
                "majority_accuracy": percent(pretrained[0].majority_class["accuracy"]),
                "test_samples": f"{pretrained[0].test['samples']:,}",
            }
        )
    return rows


def benchmark_context(benchmark: BenchmarkRecord, source: str, variant: str) -> dict:
    """The variant's parameters and encoder latencies beside `bert` and HF's BertModel."""
    metadata = benchmark.metadata
    compared = [variant, *(name for name in ("bert", "hf-bert") if name != variant)]
    params = benchmark.section("params")
    latency = []
    for setting in benchmark.section("infer").get("settings", []):
        models = setting["models"]
        if variant not in models:
            continue
        ratios = models[variant]["ratio_vs"]
        latency.append(
            {
                "size": setting["size"],
                "shape": f"{setting['batch']} × {setting['seq']}",
                "variant": f"{models[variant]['latency_ms']:,.1f} ms",
                "bert": f"{models['bert']['latency_ms']:,.1f} ms" if "bert" in models else "–",
                "hf_bert": f"{models['hf-bert']['latency_ms']:,.1f} ms" if "hf-bert" in models else "–",
                "vs_bert": f"{ratios['bert']:.2f}×" if "bert" in ratios else "–",
                "vs_hf_bert": f"{ratios['hf-bert']:.2f}×" if "hf-bert" in ratios else "–",
            }
        )
    return {
        "source": f"`{source}`",
        "conditions": f"{metadata['device_name']}, {threads(metadata['threads'])}, {metadata['dtype']}, torch "
        f"{metadata['torch']}, transformers {metadata['transformers']}, measured {metadata['date']}",
        "params_size": f"size `{params.get('size')}`",
        "params": [
            {
                "model": "HF `BertModel`" if name == "hf-bert" else f"`{name}`",
                "encoder": f"{params['models'][name]['encoder_total']:,}",
            }
            for name in compared
            if name in params.get("models", {})
        ],
        "latency": latency,
    }


# --- the card -----------------------------------------------------------------------------------------------------


def eval_results(run: RecordedRun, corpus: Corpus, downstream: list[dict]) -> list[EvalResult]:
    """model-index: held-out MLM accuracy and loss at the curve's last point, and each downstream task's test scores
    (the mean over this checkpoint's seeds)."""
    if not run.curve:
        return []
    final = run.curve[-1]
    held_out = {
        "task_type": "fill-mask",
        "task_name": "Masked language modelling (held-out)",
        "dataset_type": corpus.index_type,
        "dataset_name": corpus.index_name,
        "dataset_config": corpus.hub_config,
        "dataset_split": corpus.held_out_split,
    }
    results = [
        EvalResult(**held_out, metric_type=metric, metric_name=f"MLM {metric}", metric_value=round(final[metric], 4))
        for metric in ("accuracy", "loss")
    ]
    for row in downstream:
        task = {
            "task_type": "text-classification",
            "task_name": "Text classification",
            "dataset_type": row["hub_id"] or row["name"],
            "dataset_name": row["name"] if row["hub_id"] else f"{row['name']} (offline substitute, not a Hub dataset)",
            "dataset_split": "test",
        }
        seeds = f"mean of {row['seed_count']} seed{'s' if row['seed_count'] > 1 else ''}"
        accuracy = round(row["accuracy_mean"], 4)
        macro_f1 = round(row["macro_f1_mean"], 4)
        results += [
            EvalResult(**task, metric_type="accuracy", metric_name=f"accuracy ({seeds})", metric_value=accuracy),
            EvalResult(
                **task,
                metric_type="f1",
                metric_name=f"macro-F1 ({seeds})",
                metric_value=macro_f1,
                metric_args={"average": "macro"},
            ),
        ]
    return results


def build_card(
    run_dir: str | Path,
    repo_id: str,
    benchmark_json: str | Path | None = None,
    study_table: str | Path | None = None,
    arm: str | None = None,
) -> ModelCard:
    """The card of a pretraining run directory, to be published as `repo_id`; with `study_table` and `arm`, a section
    on what the study measured over all the arm's seeds at this run's budget."""
    run = RecordedRun.read(run_dir)
    spent, config = run.record, run.config
    corpus = pretraining_corpus(spent.arguments["data"])
    init_from = spent.init_from
    downstream = downstream_rows(run.downstream)
    name = repo_id.split("/")[-1]
    card_data = ModelCardData(
        model_name=name,
        language="en",
        license=LICENSE,
        library_name="transformers",
        pipeline_tag="fill-mask",
        tags=[*BASE_TAGS, spent.variant, f"size-{spent.size}", f"budget-{spent.budget}"],
        datasets=[corpus.hub_id] if corpus.hub_id else None,
        base_model=base_model(init_from),
        eval_results=eval_results(run, corpus, downstream) or None,
    )
    recorded_benchmark = portable_path(benchmark_json) if benchmark_json is not None else None
    recorded_study = portable_path(study_table) if study_table is not None else None
    provenance = CardProvenance(
        run_dir=portable_path(run_dir),
        repo_id=repo_id,
        benchmark=recorded_benchmark,
        study_table=recorded_study,
        arm=arm if study_table is not None else None,
    )
    benchmark = None
    if benchmark_json is not None:
        benchmark = benchmark_context(BenchmarkRecord.read(benchmark_json), recorded_benchmark, spent.variant)
    final = run.curve[-1] if run.curve else None
    accuracy = f"Its held-out MLM accuracy is {percent(final['accuracy'])}." if final else "It has no MLM evaluation."
    training = spent.run_record.training
    budget = (
        f"for {spent.steps:,} steps (`--max_steps`)"
        if step_capped(training)
        else f"for a wall-clock budget of `{spent.budget}`"
    )
    return render_card(
        card_data,
        TEMPLATE_PATH,
        provenance,
        summary=(
            f"A `{spent.size}` `{spent.variant}` HybridBERT encoder pretrained with masked language modelling "
            f"{budget} on {spent.device} ({threads(spent.threads)}): {spent.steps:,} steps, "
            f"{tokens(spent.tokens_seen)}. {accuracy} Generated from the run's records by `recipes/cards/model_card.py`; do not "
            "edit by hand."
        ),
        variant=spent.variant,
        size=spent.size,
        drop_mask=config.drop_mask,
        variant_description=variant_description(spent.variant, training, config.mixer_types),
        dimensions=(
            f"{config.num_hidden_layers} layers × hidden {config.hidden_size}, {config.num_attention_heads} "
            f"heads, FFN {config.intermediate_size}, vocabulary {config.vocab_size:,}, "
            f"{config.max_position_embeddings} positions"
        ),
        layout=layout_text(config.mixer_types),
        settings=settings_text(config),
        parameters=parameter_counts(config),
        initialisation=initialisation_text(init_from),
        config_overrides=spent.arguments["model"]["config_overrides"],
        spent=spent_rows(spent),
        corpus=corpus,
        curve=curve_rows(run.curve),
        held_out={"accuracy": percent(final["accuracy"]), "loss": f"{final['loss']:.3f}"} if final else None,
        downstream=downstream,
        stale_downstream=run.stale_downstream,
        benchmark=benchmark,
        budget_limitation=(
            f"This checkpoint had a budget of `{spent.budget}` ({seconds(spent.elapsed_s)} of training) on "
            f"{threads(spent.threads)} of {spent.device}, {tokens(spent.tokens_seen)}."
        ),
        shared_machine=shared_machine_text(spent.run_record.load_average),
        study=study_context(study_table, arm, spent.budget) if study_table is not None else None,
    )


def render_card(card_data: ModelCardData, template_path: Path, provenance: CardProvenance, **context) -> ModelCard:
    """A card from its template, with the provenance comment that regenerates it."""
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        provenance=provenance.comment(),
        repo_id=provenance.repo_id,
        model_name=provenance.repo_id.split("/")[-1],
        **context,
    )


def shared_machine_text(load: list[float]) -> str:
    if not load:
        return "Speeds (tokens/s, latency) depend on the machine and its load."
    return (
        f"Speeds (tokens/s, latency) were measured on the machine as it was, load average {', '.join(map(str, load))} "
        "(1, 5 and 15 minutes) at the start of the run: a busier or quieter machine gives other numbers."
    )


def write_card(
    run_dir: str | Path,
    repo_id: str,
    path: str | Path,
    benchmark_json: str | Path | None = None,
    study_table: str | Path | None = None,
    arm: str | None = None,
) -> Path:
    build_card(run_dir, repo_id, benchmark_json, study_table, arm).save(path)
    return Path(path)
