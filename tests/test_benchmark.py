"""recipes/benchmark: one --quick run (tiny sizes, short lengths, memory probes in real subprocesses) must cover every
model × metric in its JSON and every section in its markdown. Timings are never asserted: only coverage, FLOP counts
and bookkeeping."""

import itertools
import json

import pytest
import torch

from modeling import MIXER_SPECS, VARIANTS
from recipes import benchmark
from recipes.benchmark import report as benchmark_report
from recipes.benchmark import sections as benchmark_sections
from recipes.benchmark import targets as benchmark_targets
from recipes.benchmark.harness import (
    DENSE_HEAD_BERT,
    FIRST_ORDINARY_TOKEN_ID,
    HF_BERT,
    QUICK_SETTINGS,
    RECIPE_DEFAULTS,
    RECIPE_FP32,
    REFERENCES,
    SEPARATE_VALUE_ADDBERT,
    BenchmarkArguments,
    encoder_models,
    hybrid_config,
    random_batch,
    training_models,
)
from recipes.models.parameters import components
from recipes.training.mfu import native_bf16

# One thread: other test processes may share the machine, and contended threads only slow the run down.
QUICK_ARGV = ["--quick", "--threads", "1"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("benchmark")
    json_path, markdown_path = benchmark.main([*QUICK_ARGV, "--output_dir", str(output_dir)])
    return json.loads(json_path.read_text()), markdown_path.read_text()


@pytest.fixture(scope="module")
def results(report):
    return report[0]


@pytest.fixture(scope="module")
def markdown(report):
    return report[1]


def quick_arguments(*argv: str) -> BenchmarkArguments:
    return benchmark.parse_args([*QUICK_ARGV, *argv])


def settings_by_shape(section: dict) -> dict[tuple, dict]:
    return {(setting["size"], setting["batch"], setting["seq"]): setting for setting in section["settings"]}


# --- the JSON ------------------------------------------------------------------------------------------------------


def test_models_cover_every_variant_hf_bert_and_the_ablations():
    """Every variant, HF BERT, the dense-head row and the separate-value additive row are benchmarked."""
    assert training_models() == [*VARIANTS, HF_BERT, DENSE_HEAD_BERT, SEPARATE_VALUE_ADDBERT]
    assert encoder_models() == [*VARIANTS, HF_BERT, SEPARATE_VALUE_ADDBERT]


def test_parameters_of_every_model_add_up(results):
    params = results["params"]
    assert list(params["models"]) == training_models()
    for name, counts in params["models"].items():
        assert list(counts["components"]) == list(components())
        assert sum(counts["components"].values()) == counts["encoder_total"], name
        assert counts["mlm_total"] > 0
    assert params["models"][HF_BERT]["encoder_total"] == params["models"]["bert"]["encoder_total"]
    assert params["models"][DENSE_HEAD_BERT] == params["models"]["bert"]


def test_training_throughput_of_every_model_at_every_length(results):
    train = results["train"]
    args = quick_arguments()
    assert [setting["seq"] for setting in train["settings"]] == args.train_seqs
    for setting in train["settings"]:
        assert setting["batch"] == args.tokens_per_step // setting["seq"]
        assert list(setting["models"]) == training_models()
        for record in setting["models"].values():
            assert record["tokens_per_s"] > 0
            assert len(record["times_s"]) == args.repeats
            assert set(record["ratio_vs"]) == set(REFERENCES)


def test_inference_latency_of_every_encoder_in_every_shape(results):
    args = quick_arguments()
    settings = settings_by_shape(results["infer"])
    expected_shapes = {
        (args.size, 1, args.single_seq),
        (args.size, args.infer_batch_size, args.infer_batch_seq),
        (args.base_size, 1, args.long_seq),
    }
    assert set(settings) == expected_shapes
    for setting in settings.values():
        assert list(setting["models"]) == encoder_models()
        assert all(record["latency_ms"] > 0 for record in setting["models"].values())


def test_peak_memory_of_every_model_at_every_length(results):
    memory = results["memory"]
    assert "ru_maxrss" in memory["measures"]
    assert [setting["seq"] for setting in memory["settings"]] == quick_arguments().train_seqs
    for setting in memory["settings"]:
        assert list(setting["models"]) == training_models()
        for record in setting["models"].values():
            assert record["peak_mib"] > 0
            assert set(record["ratio_vs"]) == set(REFERENCES)


def test_scaling_covers_every_mixer_and_length_with_flops(results):
    scaling = results["scaling"]
    lengths = quick_arguments().scaling_seqs
    assert list(scaling["mixers"]) == list(MIXER_SPECS)
    for rows in scaling["mixers"].values():
        assert [row["seq"] for row in rows] == lengths
        assert all(row["flops"] > 0 and row["median_s"] > 0 for row in rows)
    assert scaling["sdpa_flops_counted_natively"] in (True, False)
    assert "SDPA" in scaling["flop_counting"]


@pytest.mark.parametrize("mixer", ["additive", "pooling"])
def test_linear_mixers_flops_grow_linearly(results, mixer):
    rows = results["scaling"]["mixers"][mixer]
    for row in rows:
        assert row["flops_growth"] == pytest.approx(row["seq"] / rows[0]["seq"], rel=0.01)


def test_self_attention_flops_grow_super_linearly(results):
    rows = results["scaling"]["mixers"]["self"]
    for shorter, longer in itertools.pairwise(rows):
        assert longer["flops"] / shorter["flops"] > 1.1 * longer["seq"] / shorter["seq"]


def test_bf16_section_compares_both_precisions(results):
    (setting,) = results["bf16"]["settings"]
    assert setting["model"] == "bert"
    assert setting["precisions"]["bfloat16"]["ratio_vs"]["float32"] > 0


def test_recipe_section_times_the_fp32_recipe_against_the_defaults_with_mfu(results):
    """Every variant in both configurations, MFU = tokens/s × counted FLOPs per token / the peak of the
    configuration's dtype, and a per-op profile of a defaults step naming the SDPA kernel that ran."""
    recipe = results["recipe"]
    args = quick_arguments()
    assert list(recipe["configurations"]) == [RECIPE_FP32, RECIPE_DEFAULTS]
    assert recipe["configurations"][RECIPE_DEFAULTS]["bf16"] == native_bf16("cpu")
    # today's recipe trains with the variant's dropout; the defaults with the recipe's pretraining dropout (none)
    assert recipe["configurations"][RECIPE_FP32]["dropout"] is None
    assert recipe["configurations"][RECIPE_DEFAULTS]["dropout"] == 0.0
    assert [(s["model"], s["seq"]) for s in recipe["settings"]] == [(name, args.recipe_seqs[0]) for name in VARIANTS]
    for setting in recipe["settings"]:
        assert setting["model_flops_per_token"] > 0 and setting["compile_s"] is None
        for name, record in setting["configs"].items():
            peak = recipe["matmul_peak_flops"][name]
            assert record["mfu"] == pytest.approx(record["tokens_per_s"] * setting["model_flops_per_token"] / peak)
            assert set(record["ratio_vs"]) == {RECIPE_FP32}
    profiled = recipe["profile"]
    assert profiled["model"] == "bert" and len(profiled["ops"]) == args.profile_rows
    assert sum(op["share"] for op in profiled["ops"]) <= 1.0 + 1e-9
    assert any("scaled_dot_product" in kernel for kernel in profiled["sdpa_kernels"])


def test_every_target_is_measured(results):
    targets = results["targets"]
    assert len(targets) == len(benchmark_targets.targets(quick_arguments()))
    for target in targets:
        assert target["ratio"] is not None, target["target"]
        assert target["met"] in (True, False)


# --- the markdown --------------------------------------------------------------------------------------------------


def test_markdown_has_metadata_and_every_section(results, markdown):
    meta = results["metadata"]
    assert meta["threads"] == 1
    for text in ("threads: 1", "dtype: float32", meta["device_name"], torch.__version__, meta["transformers"]):
        assert text in markdown
    for title, _ in benchmark_report.SECTION_MARKDOWN.values():
        assert f"## {title}" in markdown
    assert "## Targets" in markdown
    for name in training_models():
        assert f"| {name} |" in markdown


# --- pieces --------------------------------------------------------------------------------------------------------


def test_random_batch_labels_fifteen_percent_of_ordinary_tokens():
    batch = random_batch(3, 40, with_labels=True, args=quick_arguments())
    assert (batch["input_ids"] >= FIRST_ORDINARY_TOKEN_ID).all()
    assert batch["attention_mask"].all()
    labelled = batch["labels"] != -100
    assert labelled.sum(dim=1).tolist() == [6, 6, 6]
    assert torch.equal(batch["labels"][labelled], batch["input_ids"][labelled])


def test_self_attention_flops_include_the_attention_term():
    """FlopCounterMode has no formula for CPU SDPA; the benchmark adds torch's own, so Q/K/V projections plus
    QKᵀ and AV are counted."""
    config = hybrid_config("bert", "tiny", 512)
    hidden_size, length = config.hidden_size, 32
    mixer = benchmark_sections.MIXERS["self"](config).eval()
    step = benchmark_sections.mixer_step(mixer, torch.randn(1, length, hidden_size), backward=False, bf16=False)
    projections = 3 * 2 * length * hidden_size**2
    attention = 2 * 2 * length**2 * hidden_size
    assert benchmark_sections.flops_of(step) == projections + attention


def test_quick_keeps_options_given_explicitly():
    args = quick_arguments("--repeats", "3", "--sections", "train,memory")
    assert args.repeats == 3
    assert args.sections == ["train", "memory"]
    assert args.size == QUICK_SETTINGS["size"]


def test_unknown_section_or_model_is_rejected():
    with pytest.raises(ValueError, match="unknown section 'speed'"):
        quick_arguments("--sections", "speed")
    with pytest.raises(ValueError, match="unknown bf16 model"):
        quick_arguments("--bf16_models", "gpt2")


def test_recipe_configurations_build_their_own_dropout_on_the_shared_size():
    """--recipe_config_overrides sizes every configuration alike; only the recipe's defaults take its pretraining
    dropout, today's fp32 recipe keeps the variant's."""
    args = BenchmarkArguments(sections=["recipe"], recipe_config_overrides="num_hidden_layers=6")
    configurations = benchmark_sections.recipe_configurations(args)
    fields = {name: benchmark_sections.recipe_model_fields(args, c["dropout"]) for name, c in configurations.items()}
    assert fields[RECIPE_FP32] == {"num_hidden_layers": 6}
    assert fields[RECIPE_DEFAULTS] == {
        "num_hidden_layers": 6, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0
    }  # fmt: skip
