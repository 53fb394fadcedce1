"""studies/healing/table.py: rows pooled over seeds from probe and fine-tuning records, shares of the teacher paired by
seed, and one clear error for each record that cannot be placed."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from recipes.records import FinetuningRecord, FrontierRecord, HealingTable, PretrainingIdentity, ProbeRecord
from studies.healing.table import main


def probe_record(
    seed: int, run_key: str, teacher: float, student: float, unhealed: float, unhealed_latency: float = 1.1
) -> ProbeRecord:
    student_dir = f"runs/heal/hbert-v1-distill-seed{seed}"
    encoders = {
        "teacher": {"kind": "teacher", "name": "minilm", "seed": seed},
        student_dir: {
            "kind": "healed",
            "variant": "hbert-v1",
            "objective": "distillation",
            "keep_source_settings": False,
            "steps": 600,
            "seed": seed,
            "run_key": run_key,
        },
        "hbert-v1 (unhealed)": {"kind": "unhealed", "variant": "hbert-v1", "keep_source_settings": False, "seed": seed},
    }
    accuracies = {"teacher": teacher, student_dir: student, "hbert-v1 (unhealed)": unhealed}
    latency = {
        name: {"latency_ms": 1.0, "ratio_vs": {"teacher": ratio}}
        for name, ratio in zip(encoders, (1.0, 0.9, unhealed_latency))
    }
    return ProbeRecord(
        arguments={},
        encoders=encoders,
        tasks={"trec": {name: {"accuracy": value, "agreement": 0.5} for name, value in accuracies.items()}},
        latency_ms={"128": latency, "512": latency},
        device="cpu",
        threads=2,
        versions={},
    )


TRAINING = {
    "classifier_pooling": "mean", "learning_rate": 5e-05, "learning_rate_grid": None, "batch_size": 64,
    "num_train_epochs": 4.0, "max_steps": -1, "max_seq_length": 128, "max_train_samples": None, "split_seed": 42,
    "selected_by": "macro_f1",
}  # fmt: skip


def finetuned_record(seed: int, accuracy: float, run_key: str | None = None, converted: dict | None = None, **kw):
    pretraining = None
    if run_key is not None:
        pretraining = PretrainingIdentity(
            run_dir=f"runs/heal/hbert-v1-distill-seed{kw.get('trained_seed', seed)}",
            variant="hbert-v1",
            size="minilm",
            budget="3h",
            budget_s=10800.0,
            seed=kw.get("trained_seed", seed),
            run_key=run_key,
        )
    return FinetuningRecord(
        task="trec",
        init="pretrained",
        seed=seed,
        split_seed=42,
        model={
            "name_or_path": "x",
            "variant": "hbert-v1",
            "size": "minilm",
            **({"converted": converted} if converted else {}),
        },
        pretraining=pretraining,
        epochs=3.0,
        train_samples=4900,
        test={"accuracy": accuracy, "macro_f1": accuracy, "samples": 500, **kw.get("test", {})},
        validation=[],
        majority_class={"label": "DESC", "accuracy": 0.2, "macro_f1": 0.05},
        training=kw.get("training", TRAINING),
    )


@pytest.fixture
def records(tmp_path):
    probes = []
    for seed, (teacher, student, unhealed) in {
        1: (0.80, 0.84, 0.70),
        2: (0.90, 0.90, 0.72),
        3: (0.85, 0.85, 0.71),
    }.items():
        path = tmp_path / f"probe-seed{seed}.json"
        latency = 1.4 if seed == 3 else 1.1
        probe_record(seed, f"key{seed}", teacher, student, unhealed, latency).write(path)
        probes.append(str(path))
    finetuned = []
    for name, record in {
        "minilm-1": finetuned_record(1, 0.90),
        "minilm-2": finetuned_record(2, 0.92),
        "student-1": finetuned_record(1, 0.90, run_key="key1"),
        "student-2": finetuned_record(2, 0.89, run_key="key2"),
        "unhealed-1": finetuned_record(1, 0.80, converted={"keep_source_settings": False}, test={"one_class": True}),
    }.items():
        finetuned.append(str(record.write(tmp_path / f"{name}.json")))
    return probes, finetuned


def test_rows_pool_seeds_and_pair_them_with_the_teacher(records, tmp_path):
    probes, finetuned = records
    output = tmp_path / "table.md"
    summarised = main(["--probes", *probes, "--finetuned", *finetuned, "--output", str(output)])
    student = summarised["rows"]["hbert-v1, distillation 600 steps"]["tasks"]["trec"]
    shares = [0.84 / 0.80, 1.0, 1.0]
    mean = sum(shares) / 3
    sd = math.sqrt(sum((share - mean) ** 2 for share in shares) / 2)
    half_width = 4.302652729911275 * sd / math.sqrt(3)  # t_{0.975, 2}
    assert student["probe"]["seeds"] == [1, 2, 3]
    assert student["probe"]["share_of_teacher"] == pytest.approx(
        {"mean": mean, "pairs": 3, "low": mean - half_width, "high": mean + half_width}
    )
    # fine-tuned: the students of seeds 1 and 2 against MiniLM fine-tuned with seeds 1 and 2
    assert student["finetuned"]["share_of_teacher"]["mean"] == pytest.approx((0.90 / 0.90 + 0.89 / 0.92) / 2)
    unhealed = summarised["rows"]["hbert-v1, not healed"]
    assert unhealed["tasks"]["trec"]["finetuned"]["share_of_teacher"] == pytest.approx(
        {"mean": 0.80 / 0.90, "pairs": 1}
    )
    assert unhealed["latency_ratio"] == pytest.approx(1.2) and summarised["latency_seq"] == 512
    assert unhealed["latency_ratio_range"] == pytest.approx([1.1, 1.4])
    # the one-class flag where a record sets it; a record without the flag (older records) is counted as unchecked
    assert unhealed["tasks"]["trec"]["one_class_seeds"] == [1] and student["one_class_seeds"] == []
    assert student["agreement"]["seeds"] == [1, 2, 3]
    assert (student["agreement"]["mean"], student["agreement"]["sd"]) == pytest.approx((0.5, 0.0))
    text = output.read_text()
    assert (
        "| hbert-v1, not healed | 71.0 ± 1.0 (n=3);" in text
        and "88.9% ⚠ one class (seed 1) | 0.500 ± 0.000 | 1.20× (1.10×–1.40×) |" in text
    )
    assert "| teacher |" in text and "| 1.00× |" in text  # one value: no range
    assert "(4 of the 5 fine-tuning records predate this flag and are not checked)." in text
    assert (
        "Fine-tuned: trec: mean-pooled classifier, full training set, 4 epochs at lr 5e-05, batch 64, 128 tokens"
        in text
    )
    assert HealingTable.read(output.with_suffix(".json")) == HealingTable(**json.loads(json.dumps(summarised)))
    # what healing buys: the student minus the same conversion not healed, paired by seed
    gains = [0.84 - 0.70, 0.90 - 0.72, 0.85 - 0.71]
    gain_mean = sum(gains) / 3
    gain_half_width = 4.302652729911275 * math.sqrt(sum((g - gain_mean) ** 2 for g in gains) / 2) / math.sqrt(3)
    healing = summarised["healing"]["hbert-v1, distillation 600 steps"]
    assert healing["against"] == "hbert-v1, not healed"
    probe_gain, finetuned_gain = healing["tasks"]["trec"]["probe"], healing["tasks"]["trec"]["finetuned"]
    assert probe_gain.pop("seeds") == [1, 2, 3] and finetuned_gain.pop("seeds") == [1]
    assert probe_gain == pytest.approx(
        {"mean": gain_mean, "low": gain_mean - gain_half_width, "high": gain_mean + gain_half_width}
    )
    assert finetuned_gain == pytest.approx({"mean": 0.90 - 0.80})  # one pair: no interval
    low, high = 100 * (gain_mean - gain_half_width), 100 * (gain_mean + gain_half_width)
    assert f"| hbert-v1, distillation 600 steps | +15.3 [{low:+.1f}, {high:+.1f}] (n=3) | +10.0 (n=1) |" in text


def test_records_that_cannot_be_placed_are_refused(records, tmp_path):
    probes, _ = records
    unknown = str(finetuned_record(1, 0.9, run_key="never-probed").write(tmp_path / "unknown.json"))
    with pytest.raises(ValueError, match="which no probe record describes"):
        main(["--probes", *probes, "--finetuned", unknown])
    mismatched = str(finetuned_record(2, 0.9, run_key="key1", trained_seed=1).write(tmp_path / "mismatched.json"))
    with pytest.raises(ValueError, match="fine-tune each student with its own seed"):
        main(["--probes", *probes, "--finetuned", mismatched])
    other_protocol = finetuned_record(3, 0.9, run_key="key3", training={**TRAINING, "classifier_pooling": "cls"})
    with pytest.raises(ValueError, match="one table compares one fine-tuning protocol per task"):
        main(["--probes", *probes, "--finetuned", *records[1], str(other_protocol.write(tmp_path / "cls.json"))])
    with pytest.raises(ValueError, match="a second score"):
        main(["--probes", probes[0], probes[0]])
    # the teacher is probed beside every variant: the same score again is one measurement, another one is an error
    beside = probe_record(1, "other-key", 0.80, 0.5, 0.5)
    beside = dataclasses.replace(
        beside,
        encoders={
            name: {**described, "variant": "addbert"} if described["kind"] != "teacher" else described
            for name, described in beside.encoders.items()
        },
    )
    beside.write(tmp_path / "addbert.json")
    summarised = main(["--probes", *probes, str(tmp_path / "addbert.json")])
    assert summarised["rows"]["teacher"]["tasks"]["trec"]["probe"]["seeds"] == [1, 2, 3]
    assert summarised["rows"]["addbert, not healed"]["tasks"]["trec"]["probe"]["mean"] == 0.5
    beside.tasks["trec"]["teacher"]["accuracy"] = 0.81
    beside.write(tmp_path / "addbert.json")
    with pytest.raises(ValueError, match="a second score, 0.81 after 0.8, for 'teacher' on trec at seed 1"):
        main(["--probes", *probes, str(tmp_path / "addbert.json")])
    old = tmp_path / "old.json"
    old.write_text(
        json.dumps({k: v for k, v in probe_record(1, "k", 0.8, 0.8, 0.7).to_dict().items() if k != "encoders"})
    )
    with pytest.raises(ValueError, match="is not a probe record: it lacks encoders"):
        main(["--probes", str(old)])


def test_a_frontier_record_adds_each_architectures_latency_against_the_same_implementation(records, tmp_path):
    """With --frontier, every row of one architecture (healed or not) gets that conversion's latency ÷ the teacher in
    this implementation at batch 1 and 8 × 512, one ratio per measurement, shown as their mean and range; the
    teacher's row is HF's BertModel against it."""
    probes, finetuned = records

    def measured(ratios: dict[str, float]) -> dict:
        encoders = {
            name: {"latency_ms": 1.0, "ratio_vs": {FrontierRecord.SAME_IMPLEMENTATION: value}}
            for name, value in ratios.items()
        }
        return {shape: {"load_average_before": [0.1] * 3, "encoders": encoders} for shape in ("1x512", "8x512")}

    frontier = FrontierRecord(
        teacher="minilm", validation_texts={}, layer_agreement={}, layouts={}, device="cpu", threads=2,
        git_commit="0" * 40, measured_at="then",
        latency_measurements=[
            {"latency_ms": measured({FrontierRecord.HF_BERT: 1.02, FrontierRecord.SAME_IMPLEMENTATION: 1.0, "hbert-v1": 0.90})},
            {"latency_ms": measured({"hbert-v1": 0.80})},
        ],
    )  # fmt: skip
    path = frontier.write(tmp_path / "frontier.json")
    output = tmp_path / "table.md"
    summarised = main(
        ["--probes", *probes, "--finetuned", *finetuned, "--output", str(output), "--frontier", str(path)]
    )
    rows = summarised["rows"]
    each_measurement = {"1x512": [0.90, 0.80], "8x512": [0.90, 0.80]}
    assert rows["hbert-v1, distillation 600 steps"]["latency_vs_same_implementation"] == each_measurement
    assert rows["hbert-v1, not healed"]["latency_vs_same_implementation"] == each_measurement
    assert rows["teacher"]["latency_vs_same_implementation"] == {"1x512": [1.02], "8x512": [1.02]}
    text = output.read_text()
    assert "| latency ÷ teacher in this implementation (1 × 512 / 8 × 512) |" in text
    assert "| 0.85× (0.80–0.90) / 0.85× (0.80–0.90) |" in text and "| 1.02× / 1.02× |" in text
    main(["--probes", *probes, "--output", str(tmp_path / "plain.md")])
    assert "in this implementation" not in (tmp_path / "plain.md").read_text()  # no frontier record, no column
