"""Saved HybridBERT folders are self-contained remote code.

A folder written by `save_pretrained` must load with `from_pretrained(dir, trust_remote_code=True)` in a fresh
`python -I` process, started from an empty temporary directory, in which the project's packages are never imported
(importing them raises), and must give the same outputs. The two shipped files import only torch, the standard
library and `transformers`' public API.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch
import transformers
from helpers import padded_batch, tiny_config

from modeling import (
    MIXER_SPECS,
    SIZES,
    VARIANTS,
    HybridBertConfig,
    HybridBertForMaskedLM,
    HybridBertForQuestionAnswering,
    HybridBertForSequenceClassification,
    HybridBertForTokenClassification,
)
from recipes.data.assets import default_tokenizer

MODELING_DIR = Path(__file__).resolve().parents[1] / "modeling"
REMOTE_FILES = ("configuration_hybrid_bert.py", "modeling_hybrid_bert.py")
AUTO_MAP = {
    "AutoConfig": "configuration_hybrid_bert.HybridBertConfig",
    "AutoModel": "modeling_hybrid_bert.HybridBertModel",
    "AutoModelForMaskedLM": "modeling_hybrid_bert.HybridBertForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_hybrid_bert.HybridBertForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_hybrid_bert.HybridBertForTokenClassification",
    "AutoModelForQuestionAnswering": "modeling_hybrid_bert.HybridBertForQuestionAnswering",
}
REAL_VOCAB = 30522
# fp32 rounding at logits of magnitude ~10: the fresh process may run the same math through another kernel.
MAX_DIFF = 1e-5

# Runs in the fresh process. argv: manifest path, report path. The manifest lists jobs: load `dir` with the Auto
# class `auto_class`, run it on the saved inputs, compare each output field with its saved reference.
FRESH_PROCESS_SCRIPT = r'''
import importlib.abc, json, os, shutil, sys, traceback

PROJECT = ("modeling", "recipes", "hybrid_bert_zoo")


def project_modules():
    return sorted(name for name in sys.modules if name.split(".")[0].startswith(PROJECT))


class BlockProject(importlib.abc.MetaPathFinder):
    """The project is absent here: importing any of its packages fails."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0].startswith(PROJECT):
            raise ImportError(f"project module {name!r} imported in the fresh process")
        return None


sys.meta_path.insert(0, BlockProject())
manifest_path, report_path = sys.argv[1], sys.argv[2]
report = {"isolated": bool(sys.flags.isolated), "cwd": os.getcwd(), "sys_path": list(sys.path),
          "before_load": project_modules(), "jobs": {}}

import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, pipeline

with open(manifest_path) as f:
    manifest = json.load(f)
inputs = torch.load(manifest["inputs"])
report["after_imports"] = project_modules()
for job in manifest["jobs"]:
    result = {}
    try:
        auto_class = getattr(transformers, job["auto_class"])
        config = AutoConfig.from_pretrained(job["dir"], trust_remote_code=True)
        result["config_class"] = f"{type(config).__module__}.{type(config).__name__}"
        result["config"] = {key: getattr(config, key) for key in ("variant", "size", "mixer_types", "model_type")}
        model, info = auto_class.from_pretrained(job["dir"], trust_remote_code=True, output_loading_info=True)
        model.eval()
        result["model_class"] = f"{type(model).__module__}.{type(model).__name__}"
        result["loading_info"] = {key: sorted(map(str, value)) for key, value in info.items()}
        with torch.no_grad():
            outputs = model(**inputs)
        result["outputs"] = {}
        for field, reference_path in job["references"].items():
            got, expected = getattr(outputs, field), torch.load(reference_path)
            result["outputs"][field] = {
                "shape": list(got.shape),
                "expected_shape": list(expected.shape),
                "bitwise": bool(got.shape == expected.shape and torch.equal(got, expected)),
                "max_diff": (got - expected).abs().max().item() if got.shape == expected.shape else None,
            }
        if job.get("fill_mask"):
            tokenizer = AutoTokenizer.from_pretrained(job["dir"])
            fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
            result["fill_mask"] = [p["token_str"] for p in fill("paris is the [MASK] of france.", top_k=3)]
    except Exception:
        # One line per frame is enough; some errors (an Auto class's list of known configs) run to many KB.
        result["error"] = "\n".join(line[:400] for line in traceback.format_exc().splitlines())
    finally:
        if job.get("delete_after"):
            shutil.rmtree(job["dir"], ignore_errors=True)
    report["jobs"][job["name"]] = result
    del result
report["after_load"] = project_modules()
with open(report_path, "w") as f:
    json.dump(report, f)
'''


def run_in_fresh_process(jobs: list[dict], inputs: dict, work: Path) -> dict:
    """Run `jobs` in `python -I` from an empty temporary cwd, with a private remote-code module cache."""
    work.mkdir(parents=True, exist_ok=True)
    cwd = work / "empty_cwd"
    cwd.mkdir()
    script, manifest, report = work / "verify_remote.py", work / "manifest.json", work / "report.json"
    script.write_text(FRESH_PROCESS_SCRIPT)
    torch.save(inputs, work / "inputs.pt")
    manifest.write_text(json.dumps({"inputs": str(work / "inputs.pt"), "jobs": jobs}))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_MODULES_CACHE": str(work / "hf_modules"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    process = subprocess.run(
        [sys.executable, "-I", str(script), str(manifest), str(report)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert process.returncode == 0, f"fresh process failed:\n{process.stdout[-3000:]}\n{process.stderr[-5000:]}"
    result = json.loads(report.read_text())
    project_root = str(MODELING_DIR.parent)
    assert result["isolated"]
    assert Path(result["cwd"]).resolve() == cwd.resolve()
    assert not any(entry and Path(entry).resolve() == Path(project_root) for entry in result["sys_path"])
    assert result["before_load"] == [] and result["after_imports"] == [] and result["after_load"] == []
    return result


def assert_job_ok(name: str, result: dict, expected_class: str, head_prefix: str | None = None) -> None:
    """The job loaded the remote-code class with every weight, and each output matched its reference.

    `head_prefix`: loading the bare encoder from a folder with a head leaves that head's weights (only) unused.
    """
    assert "error" not in result, f"{name}: {result['error']}"
    assert result["model_class"].startswith("transformers_modules."), f"{name}: {result['model_class']}"
    assert result["model_class"].endswith(f".modeling_hybrid_bert.{expected_class}")
    assert result["config_class"].endswith(".configuration_hybrid_bert.HybridBertConfig")
    assert result["config_class"].startswith("transformers_modules.")
    info = result["loading_info"]
    assert info.get("missing_keys") == [], f"{name}: {info}"
    unexpected = info.get("unexpected_keys")
    if head_prefix is None:
        assert unexpected == [], f"{name}: {info}"
    else:
        assert unexpected and all(key.startswith(head_prefix) for key in unexpected), f"{name}: {info}"
    assert info.get("mismatched_keys", []) == [], f"{name}: {info}"
    for field, out in result["outputs"].items():
        assert out["shape"] == out["expected_shape"], f"{name}.{field}: {out}"
        assert out["bitwise"] or out["max_diff"] <= MAX_DIFF, f"{name}.{field}: {out}"


def perturb_flat_params_(model: torch.nn.Module, seed: int) -> None:
    """Move biases and LayerNorm weights off their 0/1 init, so a weight that failed to load shows in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)


def real_vocab_inputs() -> dict:
    input_ids, attention_mask = padded_batch(batch=3, seq=12, vocab=REAL_VOCAB, seed=3)
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 6:] = 1
    return dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids * attention_mask)


def tiny_inputs() -> dict:
    input_ids, attention_mask = padded_batch(batch=3, seq=12)
    return dict(input_ids=input_ids, attention_mask=attention_mask)


def assert_remote_files_shipped(folder: Path) -> None:
    files = set(os.listdir(folder))
    assert "model.safetensors" in files
    assert "pytorch_model.bin" not in files
    for name in REMOTE_FILES:
        assert name in files, f"{name} not saved in {sorted(files)}"
        assert (folder / name).read_bytes() == (MODELING_DIR / name).read_bytes()


# Saved folder ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_class",
    [
        HybridBertForMaskedLM,
        HybridBertForSequenceClassification,
        HybridBertForTokenClassification,
        HybridBertForQuestionAnswering,
    ],
)
def test_saved_folder_has_safetensors_code_and_full_auto_map(model_class, tmp_path):
    """save_pretrained writes model.safetensors (no .bin), both .py files, auto_map for every Auto class and the
    sentence-transformers files (the encoder, then mean pooling at the hidden size)."""
    model_class(tiny_config("hbert-v1")).save_pretrained(tmp_path)
    assert_remote_files_shipped(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "hybrid_bert"
    assert config["architectures"] == [model_class.__name__]
    assert config.get("auto_map") == AUTO_MAP
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert [(m["path"], m["type"]) for m in modules] == [
        ("", "sentence_transformers.models.Transformer"),
        ("1_Pooling", "sentence_transformers.models.Pooling"),
    ]
    pooling = json.loads((tmp_path / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    assert pooling["word_embedding_dimension"] == config["hidden_size"]
    assert json.loads((tmp_path / "sentence_bert_config.json").read_text())["max_seq_length"] == 64


# Every variant x every size ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_variant_and_size_reloads_identically_in_fresh_process(tmp_path):
    """All 25 variant x size MLMs: saved, reloaded with trust_remote_code in python -I, same logits, fill-mask runs."""
    tokenizer = default_tokenizer()
    inputs = real_vocab_inputs()
    models_root = tmp_path / "models"
    jobs, expected_configs = [], {}
    try:
        for seed, (variant, size) in enumerate((v, s) for v in VARIANTS for s in SIZES):
            name = f"{variant}-{size}"
            torch.manual_seed(seed)
            model = HybridBertForMaskedLM(HybridBertConfig.from_variant(variant, size)).eval()
            perturb_flat_params_(model, seed)
            folder = models_root / name
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            assert_remote_files_shipped(folder)
            with torch.no_grad():
                logits = model(**inputs).logits
            assert logits.shape == (3, 12, REAL_VOCAB)
            reference = tmp_path / f"{name}.logits.pt"
            torch.save(logits, reference)
            expected_configs[name] = {
                "variant": variant,
                "size": size,
                "mixer_types": model.config.mixer_types,
                "model_type": "hybrid_bert",
            }
            jobs.append(
                {
                    "name": name,
                    "auto_class": "AutoModelForMaskedLM",
                    "dir": str(folder),
                    "references": {"logits": str(reference)},
                    "fill_mask": True,
                    "delete_after": True,
                }
            )
            del model, logits

        report = run_in_fresh_process(jobs, inputs, tmp_path / "fresh")
    finally:
        shutil.rmtree(models_root, ignore_errors=True)

    assert sorted(report["jobs"]) == sorted(expected_configs)
    for name, result in report["jobs"].items():
        assert_job_ok(name, result, "HybridBertForMaskedLM")
        assert result["config"] == expected_configs[name], name
        assert len(result["fill_mask"]) == 3 and all(isinstance(t, str) and t for t in result["fill_mask"]), name


def test_sequence_classification_folder_loads_with_auto_model_and_auto_head_in_fresh_process(tmp_path):
    """A saved classifier loads in a fresh process as AutoModelForSequenceClassification and AutoModel: same outputs."""
    torch.manual_seed(0)
    labels = {0: "negative", 1: "positive", 2: "neutral"}
    config = tiny_config("pool-hybrid", num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    model = HybridBertForSequenceClassification(config).eval()
    perturb_flat_params_(model, 0)
    folder = tmp_path / "classifier"
    model.save_pretrained(folder)
    inputs = tiny_inputs()
    with torch.no_grad():
        base = model.hybrid_bert(**inputs)
        references = {
            "logits": model(**inputs).logits,
            "last_hidden_state": base.last_hidden_state,
            "pooler_output": base.pooler_output,
        }
    for field, tensor in references.items():
        torch.save(tensor, tmp_path / f"{field}.pt")
    jobs = [
        {
            "name": "head",
            "auto_class": "AutoModelForSequenceClassification",
            "dir": str(folder),
            "references": {"logits": str(tmp_path / "logits.pt")},
        },
        {
            "name": "encoder",
            "auto_class": "AutoModel",
            "dir": str(folder),
            "references": {field: str(tmp_path / f"{field}.pt") for field in ("last_hidden_state", "pooler_output")},
        },
    ]
    report = run_in_fresh_process(jobs, inputs, tmp_path / "fresh")
    assert_job_ok("head", report["jobs"]["head"], "HybridBertForSequenceClassification")
    assert_job_ok("encoder", report["jobs"]["encoder"], "HybridBertModel", head_prefix="classifier.")
    assert report["jobs"]["head"]["config"]["variant"] == "pool-hybrid"


def test_reference_code_options_load_in_fresh_process(tmp_path):
    """A model with every mixer's reference-code options (segments from [CLS]/[SEP] included) loads from its folder
    alone: the options' code and the mixer specs travel in the two shipped files."""
    options = {name: value for spec in MIXER_SPECS.values() for name, value in spec.reference_code.items()}
    torch.manual_seed(0)
    config = tiny_config("bert", mixer_types=["self", "additive", "pooling", "pooling"], **options)
    model = HybridBertForMaskedLM(config).eval()
    perturb_flat_params_(model, 0)
    folder = tmp_path / "reference-code"
    model.save_pretrained(folder)
    input_ids, attention_mask = padded_batch(boundaries=True)
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
    with torch.no_grad():
        torch.save(model(**inputs).logits, tmp_path / "logits.pt")
    references = {"logits": str(tmp_path / "logits.pt")}
    job = {"name": "reference-code", "auto_class": "AutoModelForMaskedLM", "dir": str(folder), "references": references}
    report = run_in_fresh_process([job], inputs, tmp_path / "fresh")
    assert_job_ok("reference-code", report["jobs"]["reference-code"], "HybridBertForMaskedLM")


# Imports of the shipped files --------------------------------------------------------------------------------

STDLIB_ALLOWED = {"__future__", "math", "os", "json", "typing", "collections", "dataclasses"}


def _imports(path: Path):
    """(line, level, module, names) for every import statement anywhere in the file (functions included)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, 0, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.level, node.module or "", [alias.name for alias in node.names]


def _import_problem(level: int, module: str, names: list[str]) -> str | None:
    if level:
        return None if (level, module) == (1, "configuration_hybrid_bert") else "relative import of another file"
    parts = module.split(".")
    if parts[0] == "torch" or parts[0] in STDLIB_ALLOWED:
        return None
    if parts[0] != "transformers":
        return "not torch, transformers or an allowed standard-library module"
    if len(parts) > 1 and parts[1] == "models":
        return "transformers.models.* is not public API"
    if any(part.startswith("_") for part in parts[1:]) or any(name.startswith("_") for name in names):
        return "private transformers name"
    if module == "transformers":  # a public top-level name, or a public submodule (`initialization`)
        missing = [
            name for name in names if not hasattr(transformers, name) and find_spec(f"transformers.{name}") is None
        ]
        if missing:
            return f"not exported by transformers: {missing}"
    return None


@pytest.mark.parametrize("filename", REMOTE_FILES)
def test_remote_code_imports_only_torch_stdlib_and_public_transformers(filename):
    """Every import in a shipped file is torch, math/os/json/typing/collections, public transformers or the sibling
    file."""
    imports = list(_imports(MODELING_DIR / filename))
    assert imports, "no imports parsed"
    problems = [
        f"line {line}: {'.' * level}{module} {names}: {problem}"
        for line, level, module, names in imports
        if (problem := _import_problem(level, module, names)) is not None
    ]
    assert problems == []


def test_import_checker_rejects_project_private_and_internal_imports():
    """The checker above flags project packages, transformers.models.*, private names and other relative imports."""
    assert _import_problem(0, "modeling", ["HybridBertConfig"]) is not None
    assert _import_problem(0, "recipes.data.assets", ["fetch"]) is not None
    assert _import_problem(0, "transformers.models.bert.modeling_bert", ["BertModel"]) is not None
    assert _import_problem(0, "transformers", ["_no_such_private"]) is not None
    assert _import_problem(1, "recipes", ["assets"]) is not None
    assert _import_problem(0, "numpy", []) is not None
    assert _import_problem(0, "transformers", ["no_such_name"]) is not None
    assert _import_problem(0, "transformers", ["PreTrainedModel"]) is None
    assert _import_problem(0, "transformers", ["initialization"]) is None
    assert _import_problem(1, "configuration_hybrid_bert", ["HybridBertConfig"]) is None
