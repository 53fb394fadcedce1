"""The pretraining recipe's arguments (model, data, budget and training), parsed and checked in one place, and
what a run record keeps of them."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field

from transformers import TrainingArguments

from modeling import VARIANTS, HybridBertConfig
from recipes.data.text_sources import OFFLINE_CORPORA, CorpusSpec
from recipes.records import parse_json, plain
from recipes.training import arguments as recipe_arguments
from recipes.training.arguments import BF16_HELP, RecipeTrainingArguments, bf16_where_native
from recipes.training.clock import BUDGET_SCHEDULE_SHAPES, parse_budget, schedule_shape

CONFIG_DEFAULTS = HybridBertConfig().to_dict()
OVERRIDABLE_FIELDS = tuple(
    name
    for name in CONFIG_DEFAULTS
    if name not in ("_name_or_path", "architectures", "model_type", "transformers_version", "variant", "size")
)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Continue pretraining a HybridBERT checkpoint (a folder, a run's checkpoint-N, or a Hub repo id) "
            "on this run's data and budget; its config fixes the model"
        },
    )
    model_revision: str | None = field(
        default=None,
        metadata={
            "help": "With a Hub repo id in --model_name_or_path or --init_from: branch, tag or commit (default main)"
        },
    )
    variant: str | None = field(default=None, metadata={"help": f"One of {', '.join(VARIANTS)} (default bert)"})
    size: str | None = field(default=None, metadata={"help": "tiny, mini, small, minilm or base (default mini)"})
    config_overrides: str | None = field(
        default=None, metadata={"help": "Config fields to override, e.g. 'hidden_dropout_prob=0.0,num_hidden_layers=6'"}
    )
    drop_mask: bool = field(default=False, metadata={"help": "DropMask: [MASK] tokens are not keys of any mixer"})
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "Initialise from an HF BERT (a folder, a Hub repo id, or 'minilm': the pinned all-MiniLM-L6-v2), "
            "HBERT §4.4"
        },
    )
    copy_ffn_and_norms: bool = field(
        default=True,
        metadata={
            "help": "With --init_from: also copy FFNs and norms that have a counterpart (false: embeddings and self-attention only)"
        },
    )
    keep_source_settings: bool = field(
        default=False,
        metadata={
            "help": "With --init_from: the BERT's settings (post-LN, its activation, learned positions, FFN biases) in "
            "the variant's layout, as recipes/distill.py --keep_source_settings"
        },
    )
    head_warmup_steps: int | None = field(
        default=None,
        metadata={
            "help": "With --init_from: train only the MLM head for this many first steps (the encoder frozen), so a "
            "BERT without an MLM head (a sentence encoder) does not receive a random head's gradients"
        },
    )
    pretraining_dropout: float = field(
        default=0.0,
        metadata={
            "help": "Dropout of hidden states and attention weights in a new model (fresh or --init_from): 0, as "
            "Cramming and ModernBERT pretrain, since a budget this short needs no regulariser and dropout masks cost "
            "a fifth of a CPU step; BERT pretrained with 0.1, HBERT with 0.005. --config_overrides naming "
            "hidden_dropout_prob or attention_probs_dropout_prob wins; a continued checkpoint keeps its own"
        },
    )
    unigram_decoder_bias: bool = field(
        default=True,
        metadata={
            "help": "Fresh weights start with the MLM decoder's bias at the log unigram frequencies of the training "
            "blocks, so the model predicts the unigram distribution before its first step and the budget is not spent "
            "learning it (no effect with --init_from or --model_name_or_path, whose weights are kept)"
        },
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A tokenizer directory or Hub id (default: the embedded bert-base-uncased)"}
    )


@dataclass
class DataArguments:
    dataset: str | None = field(
        default=None, metadata={"help": f"Offline corpus: {', '.join(OFFLINE_CORPORA)} (default wikitext-2-raw)"}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset (needs a network)"})
    dataset_config_name: str | None = field(default=None)
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "A text file (one document per line), or a .csv/.json/.jsonl file; or a glob pattern of such files "
            "(quoted: 'corpus/*.txt', '**' for subfolders), read in sorted order"
        },
    )
    validation_file: str | None = field(default=None)
    text_column_name: str | None = field(
        default=None,
        metadata={
            "help": "The column of --dataset_name or a .csv/.json train file that holds the text (default 'text')"
        },
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes that tokenise the text"})
    validation_split_percentage: float = field(
        default=5.0,
        metadata={
            "help": "Held-out share of the text's bytes (its leading documents) when the source has no validation split"
        },
    )
    max_seq_length: int = 128
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Masking rate of the held-out set (and, by default, of training)"}
    )
    training_mlm_probability: float | None = field(
        default=None,
        metadata={
            "help": "Masking rate of the training batches (default --mlm_probability); the held-out set keeps "
            "--mlm_probability, so runs with different training rates are evaluated alike"
        },
    )
    max_eval_samples: int | None = field(
        default=512, metadata={"help": "Blocks of the held-out set evaluated (None: all)"}
    )
    max_train_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Training tokens prepared at most, from the start of the corpus (default: what a --calibration "
            "budget consumes, steps × samples per step × max_seq_length; without one, the whole corpus; 0: the whole "
            "corpus)"
        },
    )
    held_out_seed: int = field(default=42, metadata={"help": "Seed of the held-out set's masks"})


@dataclass
class BudgetArguments:
    budget: str = field(default="10m", metadata={"help": "Wall-clock training budget: 90s, 10m, 2h, 1d, 1h30m"})
    num_eval_points: int = field(default=10, metadata={"help": "Evaluations at evenly spaced points of the budget"})
    final_lr_ratio: float = field(default=0.0, metadata={"help": "LR at the deadline, as a fraction of the peak"})
    calibration: str | None = field(
        default=None,
        metadata={
            "help": "A calibration record (python -m recipes.training.calibration): train the budget's calibrated steps"
        },
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an output directory holding another run (and only a run)"}
    )
    save_at_eval_points: bool = field(
        default=True,
        metadata={
            "help": "Save a checkpoint at each evaluation point (the last --save_total_limit kept), so that the same "
            "command resumes a killed run from there; --no_save_at_eval_points saves only at the end"
        },
    )


@dataclass
class PretrainingArguments(RecipeTrainingArguments):
    """TrainingArguments with this recipe's defaults (HBERT §4.2: Adam, lr 1e-4) and the fastest settings that keep
    fp32's loss curve: bf16 autocast where the device has native bf16, and fused AdamW (transformers' default with
    torch ≥ 2.8). `--torch_compile` stays opt-in: see the benchmark's `recipe` section for when it wins."""

    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: float = 0.05
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    logging_steps: float = 10
    save_total_limit: int | None = 2  # the budget callback saves at each evaluation point; the last two are kept
    eval_on_start: bool = True
    # Logged with every step's loss (and so sent to each `report_to` tracker), beside the budget spent.
    include_num_input_tokens_seen: str | bool = True
    # The held-out inputs reach the metric, which counts accuracy at [MASK] positions beside all labelled ones.
    include_for_metrics: list[str] = field(default_factory=lambda: ["inputs"])
    # The training order and the training batches' masks follow data_seed, not --seed: every variant and pretraining
    # seed sees the same batches.
    data_seed: int | None = 42
    bf16: bool = field(default=bf16_where_native(), metadata={"help": BF16_HELP})


def parse_args(argv: list[str] | None):
    return recipe_arguments.parse_args((ModelArguments, DataArguments, BudgetArguments, PretrainingArguments), argv)


def parse_overrides(text: str | None) -> dict:
    """'a=1,b=0.5,c=true' → typed values (JSON where it parses, else the string); only fields a config has. A list
    field takes its items joined by '+' (mixer_types=self+additive+self+additive)."""
    overrides = {}
    for item in filter(None, (text or "").split(",")):
        if "=" not in item:
            raise ValueError(f"--config_overrides item {item!r} is not key=value.")
        key, raw = (part.strip() for part in item.split("=", 1))
        if key not in OVERRIDABLE_FIELDS:
            close = difflib.get_close_matches(key, OVERRIDABLE_FIELDS, n=3)
            raise ValueError(
                f"--config_overrides: {key!r} is not a config field"
                + (
                    f"; did you mean {' or '.join(map(repr, close))}?"
                    if close
                    else f" (fields: {', '.join(OVERRIDABLE_FIELDS)})."
                )
            )
        if isinstance(CONFIG_DEFAULTS[key], list) and not raw.startswith("["):
            overrides[key] = [typed(part) for part in raw.split("+")]
        else:
            overrides[key] = typed(raw)
    return overrides


def typed(raw: str):
    """An override's value: JSON where it reads as JSON (numbers, booleans, lists), else the string itself."""
    try:
        return parse_json(raw, "--config_overrides", "config override")
    except ValueError:
        return raw


def corpus_spec(data_args: DataArguments) -> CorpusSpec:
    """The text source the arguments name (the embedded WikiText-2 when they name none), its held-out split and masks
    drawn with --held_out_seed whatever the run's --seed."""
    return CorpusSpec(
        dataset=data_args.dataset or (None if data_args.dataset_name or data_args.train_file else "wikitext-2-raw"),
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        text_column_name=data_args.text_column_name or "text",
        validation_split_percentage=data_args.validation_split_percentage,
        seed=data_args.held_out_seed,
    )


def check_budget_arguments(budget_args: BudgetArguments, training_args: TrainingArguments) -> tuple[float, str]:
    """The budget in seconds and the schedule's shape, once the budget, schedule and DeepSpeed settings agree."""
    budget_s = parse_budget(budget_args.budget)
    deepspeed_mismatches = getattr(getattr(training_args, "hf_deepspeed_config", None), "mismatches", None)
    if deepspeed_mismatches:
        raise ValueError(
            "The DeepSpeed config disagrees with the training arguments:\n"
            + "\n".join(deepspeed_mismatches)
            + "\nSet those keys to 'auto' or to the same values."
        )
    shape = schedule_shape(training_args.lr_scheduler_type)
    if shape not in BUDGET_SCHEDULE_SHAPES and training_args.max_steps <= 0:
        raise ValueError(
            f"A budget schedule is {' or '.join(BUDGET_SCHEDULE_SHAPES)}; got --lr_scheduler_type {shape}."
        )
    if training_args.max_steps <= 0 and not 0 <= training_args.warmup_steps < 1:
        raise ValueError("With a budget schedule, --warmup_steps is a fraction of the budget in [0, 1).")
    return budget_s, shape


def training_settings(training_args: TrainingArguments, data_args: DataArguments, shape: str) -> dict:
    """What the run record keeps of the training arguments (the precision accelerate ran is added after training:
    `settings_in_use`)."""
    samples_per_step = (
        training_args.per_device_train_batch_size * training_args.world_size * training_args.gradient_accumulation_steps
    )
    return {
        "samples_per_step": samples_per_step,
        "max_seq_length": data_args.max_seq_length,
        "learning_rate": training_args.learning_rate,
        "schedule": f"{'steps' if training_args.max_steps > 0 else 'budget'}-{shape}",
        "data_seed": training_args.data_seed,
        "held_out_seed": data_args.held_out_seed,
    }


def recorded_arguments(model_args: ModelArguments, data_args: DataArguments, budget_args: BudgetArguments) -> dict:
    """The arguments as budget.json records them."""
    return plain({"model": asdict(model_args), "data": asdict(data_args), "budget": asdict(budget_args)})


def train_token_cap(data_args: DataArguments, calibration: dict | None, samples_per_step: int) -> int | None:
    """The training tokens to prepare at most: --max_train_tokens, else what the calibrated budget consumes (None: the
    whole corpus)."""
    if data_args.max_train_tokens is not None:
        if data_args.max_train_tokens < 0:
            raise ValueError(f"--max_train_tokens {data_args.max_train_tokens}: a number of tokens, or 0 for all.")
        return data_args.max_train_tokens or None
    if calibration is None:
        return None
    return calibration["steps"] * samples_per_step * data_args.max_seq_length


def training_mlm_probability(data_args: DataArguments) -> float:
    """The masking rate of training batches."""
    rate = data_args.training_mlm_probability
    return data_args.mlm_probability if rate is None else rate
