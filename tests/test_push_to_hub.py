"""`push_to_hub.py` on real run directories (the session's recorded run from test_cards, and a second tiny run for a
zoo). The upload side runs against `RecordingHfApi`, a real HfApi whose Hub-writing methods record their arguments (and
keep a copy of each uploaded folder) instead of sending them: that checks our plan, not huggingface_hub. The download
side is real: the recorded folders are committed to local git repos and served by olah, a self-hosted Hub mirror, to
transformers and huggingface_hub in a fresh process.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import free_port, git, serve_olah
from huggingface_hub import HfApi
from test_cards import shared_recorded_run
from transformers import AutoModelForMaskedLM, AutoTokenizer

from recipes.cards.model_card import build_card, write_card
from recipes.pretrain import main as pretrain
from recipes.publishing.hub import COLLECTION_DESCRIPTION, HUB_CHECK_TIMEOUT_S
from recipes.publishing.plan import MODEL_FILES as PUBLISHED_MODEL_FILES
from recipes.publishing.plan import PushError
from recipes.push_to_hub import main
from recipes.records import EqualTimeTable, PretrainingRecord
from recipes.training.curves import save_curve

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "zoo-org"
REPO_ID = f"{NAMESPACE}/hbert-v1-tiny-3s"
USER_FILES = {
    "README.md", "config.json", "configuration_hybrid_bert.py", "modeling_hybrid_bert.py", "model.safetensors",
    "tokenizer.json", "tokenizer_config.json", "budget.json", "mlm_curve.json", "mlm_curve.png",
    "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
}  # fmt: skip
MODEL_FILES = set(PUBLISHED_MODEL_FILES)
# Variables that would point huggingface_hub at a real token or the real Hub: removed from every child process.
HUB_ENVIRONMENT = (
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
)  # fmt: skip


class RecordingHfApi(HfApi):
    """A real HfApi whose Hub-writing methods record (method, arguments as passed) and copy each uploaded folder to
    `received/<repo_id>/<revision>`; any other call would go to a closed port and fail."""

    def __init__(self, received: Path):
        super().__init__(endpoint=f"http://127.0.0.1:{free_port()}", token="hf_recording_only")
        self.calls: list[tuple[str, dict]] = []
        self.received = received

    def _record(self, method: str, *args, **kwargs) -> dict:
        bound = inspect.signature(getattr(HfApi, method)).bind(self, *args, **kwargs)
        arguments = {name: value for name, value in bound.arguments.items() if name != "self"}
        self.calls.append((method, arguments))
        return arguments

    def whoami(self, *args, **kwargs):
        self._record("whoami", *args, **kwargs)
        return {"name": NAMESPACE}

    def create_repo(self, *args, **kwargs):
        self._record("create_repo", *args, **kwargs)

    def create_branch(self, *args, **kwargs):
        self._record("create_branch", *args, **kwargs)

    def upload_folder(self, *args, **kwargs):
        arguments = self._record("upload_folder", *args, **kwargs)
        shutil.copytree(arguments["folder_path"], self.received / arguments["repo_id"] / arguments["revision"])

    def create_collection(self, *args, **kwargs):
        self._record("create_collection", *args, **kwargs)
        return SimpleNamespace(slug=f"{NAMESPACE}/hybridbert-zoo-0123456789abcdef")

    def add_collection_item(self, *args, **kwargs):
        self._record("add_collection_item", *args, **kwargs)


def calls_of(api: RecordingHfApi, method: str) -> list[dict]:
    return [arguments for name, arguments in api.calls if name == method]


def files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def checkpoint_name(run_dir: Path) -> str:
    (checkpoint,) = run_dir.glob("checkpoint-*")  # a budgeted run saves one final checkpoint
    return checkpoint.name


def checkpoint_branch(run_dir: Path) -> str:
    return checkpoint_name(run_dir).replace("checkpoint-", "step-")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, train_file) -> Path:
    """The session's recorded run: hbert-v1 tiny, 3 s budget, TREC and VADER downstream records."""
    return shared_recorded_run(tmp_path_factory, train_file)


@pytest.fixture(scope="module")
def zoo_dir(run_dir, tmp_path_factory, train_file) -> Path:
    """A zoo of two runs: a copy of the recorded run and a 2 s bert tiny run without downstream records."""
    zoo = tmp_path_factory.mktemp("zoo")
    shutil.copytree(run_dir, zoo / run_dir.name)
    pretrain([
        "--variant", "bert", "--size", "tiny",
        "--config_overrides", "hidden_size=32,num_attention_heads=2,intermediate_size=64",
        "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--budget", "2s", "--num_eval_points", "1",
        "--max_eval_samples", "8", "--train_file", str(train_file), "--output_dir", str(zoo / "bert-tiny-2s"),
    ])  # fmt: skip
    return zoo


@pytest.fixture(scope="module")
def pushed_run(run_dir, tmp_path_factory) -> RecordingHfApi:
    """`push_to_hub.py RUN_DIR --repo-id zoo-org/hbert-v1-tiny-3s --private --with-checkpoints`, recorded."""
    api = RecordingHfApi(tmp_path_factory.mktemp("received"))
    main([str(run_dir), "--repo-id", REPO_ID, "--private", "--with-checkpoints"], api=api)
    return api


def test_run_push_makes_exactly_these_hub_calls(pushed_run, run_dir):
    """A run: whoami, create_repo(exist_ok=True, private), upload_folder to main, then a branch per checkpoint."""
    step = checkpoint_branch(run_dir)
    calls = [(method, {k: v for k, v in args.items() if k != "folder_path"}) for method, args in pushed_run.calls]
    summary = calls[2][1]["commit_message"].removesuffix(f" ({run_dir.name})")
    assert summary.startswith("hbert-v1 (tiny), budget 3s: ") and summary.endswith("4 downstream record(s)")
    assert calls == [
        ("whoami", {}),
        ("create_repo", {"repo_id": REPO_ID, "repo_type": "model", "private": True, "exist_ok": True}),
        ("upload_folder", {"repo_id": REPO_ID, "repo_type": "model", "revision": "main",
                           "commit_message": f"{summary} ({run_dir.name})", "delete_patterns": "*"}),
        ("create_branch", {"repo_id": REPO_ID, "branch": step, "repo_type": "model", "exist_ok": True}),
        ("upload_folder", {"repo_id": REPO_ID, "repo_type": "model", "revision": step,
                           "commit_message": f"{summary} ({checkpoint_name(run_dir)})", "delete_patterns": "*"}),
    ]  # fmt: skip
    staged = [Path(arguments["folder_path"]) for arguments in calls_of(pushed_run, "upload_folder")]
    assert all(folder.name.startswith(("main", "step-")) and not folder.exists() for folder in staged)  # cleaned up


def test_staged_folder_holds_exactly_what_a_user_needs(pushed_run, run_dir):
    """main gets the model, card, results and curve image, nothing else; a checkpoint branch gets the model only."""
    main_folder = pushed_run.received / REPO_ID / "main"
    downstream = {path.relative_to(run_dir).as_posix() for path in run_dir.glob("downstream/*/*.json")}
    assert len(downstream) == 4
    assert files_under(main_folder) == USER_FILES | downstream
    assert (main_folder / "README.md").read_text() == str(build_card(run_dir, REPO_ID))
    for name in files_under(main_folder) - {"README.md"}:
        assert (main_folder / name).read_bytes() == (run_dir / name).read_bytes(), name
    assert "auto_map" in json.loads((main_folder / "config.json").read_text())
    assert files_under(pushed_run.received / REPO_ID / checkpoint_branch(run_dir)) == MODEL_FILES


def test_zoo_push_makes_one_repo_per_run_and_a_collection(zoo_dir, tmp_path):
    """A zoo: a repo per run named <variant>-<size>-<budget>, checkpoints as branches, all repos in one collection."""
    api = RecordingHfApi(tmp_path)
    main(["--zoo", str(zoo_dir), "--namespace", NAMESPACE, "--with-checkpoints"], api=api)
    repo_ids = [f"{NAMESPACE}/bert-tiny-2s", REPO_ID]
    assert [(c["repo_id"], c["private"], c["exist_ok"]) for c in calls_of(api, "create_repo")] == [
        (repo_id, False, True) for repo_id in repo_ids
    ]
    uploads = [(arguments["repo_id"], arguments["revision"]) for arguments in calls_of(api, "upload_folder")]
    branches = [checkpoint_branch(zoo_dir / repo_id.split("/")[1]) for repo_id in repo_ids]
    assert uploads == [
        (repo_id, revision) for repo_id, branch in zip(repo_ids, branches) for revision in ("main", branch)
    ]
    collection_calls = [(method, arguments) for method, arguments in api.calls if "collection" in method]
    assert collection_calls[0] == (
        "create_collection",
        {"title": "HybridBERT Zoo", "namespace": NAMESPACE, "description": COLLECTION_DESCRIPTION,
         "private": False, "exists_ok": True},
    )  # fmt: skip
    added = [(arguments["collection_slug"], arguments["item_id"], arguments["item_type"], arguments["exists_ok"])
             for method, arguments in collection_calls[1:]]  # fmt: skip
    assert added == [(f"{NAMESPACE}/hybridbert-zoo-0123456789abcdef", repo_id, "model", True) for repo_id in repo_ids]
    assert files_under(tmp_path / NAMESPACE / "bert-tiny-2s" / "main") == USER_FILES  # no downstream records


def test_committed_cards_publish_their_runs_as_committed_and_stale_ones_are_refused(run_dir, tmp_path):
    """--cards: a study card, written from a run's gathered records beside its study's table, goes to the repo it names
    with the weights of the same-named run folder under --weights_dir, byte for byte as committed; a card that is no
    longer what its records give, or no card naming a folder there, is refused before any call."""
    records = tmp_path / "records" / run_dir.name
    for path in [*run_dir.glob("*.json"), *run_dir.glob("downstream/*/*.json")]:
        (records / path.relative_to(run_dir)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, records / path.relative_to(run_dir))
    budget = PretrainingRecord.read(run_dir).budget
    seeds = {"1": 0.2, "2": 0.25, "3": 0.3}
    table = EqualTimeTable(
        plateau_share=0.06, plateau_threshold=0.12, plateau={}, downstream={}, primary_endpoints={},
        mlm={budget: {arm: {"mask_accuracy": seeds, "accuracy": seeds, "loss": seeds} for arm in ("bert", "hbert-v1")}},
        reference_arm="bert",
    )  # fmt: skip
    table.write(tmp_path / "table.json")
    card = write_card(
        records, "study-org/hbert-v1-study", tmp_path / "cards" / "hbert-v1-study" / "README.md",
        study_table=tmp_path / "table.json", arm="hbert-v1",
    )  # fmt: skip
    assert "seed 1 of the arm `hbert-v1`" in card.read_text() and "+0.00 [+0.00, +0.00] (no spread)" in card.read_text()
    api = RecordingHfApi(tmp_path / "received")
    main(["--cards", str(tmp_path / "cards"), "--weights_dir", str(run_dir.parent)], api=api)
    assert [call["repo_id"] for call in calls_of(api, "create_repo")] == ["study-org/hbert-v1-study"]
    assert (
        tmp_path / "received" / "study-org" / "hbert-v1-study" / "main" / "README.md"
    ).read_text() == card.read_text()

    api = RecordingHfApi(tmp_path / "nothing")
    with pytest.raises(PushError, match="No card in .* names a run folder"):
        main(["--cards", str(tmp_path / "cards"), "--weights_dir", str(tmp_path / "records" / "elsewhere")], api=api)
    table = EqualTimeTable(**{**table.to_dict(), "reference_arm": "hbert-v1"})
    table.write(tmp_path / "table.json")
    with pytest.raises(PushError, match="is not what its records give now"):
        main(["--cards", str(tmp_path / "cards"), "--weights_dir", str(run_dir.parent)], api=api)
    assert api.calls == []


def test_dry_run_prints_plan_and_makes_no_network_call(run_dir, tmp_path):
    """--dry-run succeeds with the Hub blocked and no token, prints the plan and staged files, and calls no HfApi."""
    environment = {name: value for name, value in os.environ.items() if name not in HUB_ENVIRONMENT}
    environment.update(HF_HUB_OFFLINE="1", HF_ENDPOINT="http://10.255.255.1", HF_HOME=str(tmp_path / "hf_home"))
    command = [sys.executable, str(REPO / "recipes" / "push_to_hub.py"), str(run_dir), "--repo-id", REPO_ID]
    command += ["--dry-run", "--with-checkpoints"]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Push plan (dry run: nothing is sent):"
    assert lines[1].startswith(f"- {REPO_ID} (public) from {run_dir}: hbert-v1 (tiny), budget 3s: ")
    listed = {line.split()[0] for line in lines if line.startswith("    ")}
    assert listed == USER_FILES | {path.relative_to(run_dir).as_posix() for path in run_dir.glob("downstream/*/*.json")}
    assert any(line.startswith(f"  {checkpoint_branch(run_dir)} ({checkpoint_name(run_dir)})") for line in lines)

    api = RecordingHfApi(tmp_path / "received")
    main([str(run_dir), "--repo-id", REPO_ID, "--dry-run"], api=api)
    assert api.calls == []


@pytest.mark.parametrize("missing", ["model.safetensors", "modeling_hybrid_bert.py", "tokenizer.json", "mlm_curve.png"])
def test_incomplete_run_is_refused_before_any_call(run_dir, tmp_path, missing):
    """A run missing a file a user needs is refused with one message naming the file; nothing is called."""
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint-*", missing))
    api = RecordingHfApi(tmp_path / "received")
    with pytest.raises(PushError, match=f"is missing {missing}"):
        main([str(copy), "--repo-id", REPO_ID], api=api)
    assert api.calls == []


def test_truncated_weights_are_refused_even_in_a_dry_run(run_dir, tmp_path):
    """A model.safetensors cut short (as a full disk or an interrupted copy leaves it) is refused before staging,
    dry run included, naming the file."""
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint-*"))
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size - 1000])
    api = RecordingHfApi(tmp_path / "received")
    with pytest.raises(PushError, match=f"{weights} is not a readable safetensors file"):
        main([str(copy), "--repo-id", REPO_ID, "--dry-run"], api=api)
    assert api.calls == []


def test_weights_that_do_not_match_the_config_are_refused(run_dir, tmp_path):
    """Weights of another shape than config.json says (a config edited after training) are refused before staging,
    naming the file and the tensor."""
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((copy / "config.json").read_text())
    config["intermediate_size"] *= 2
    (copy / "config.json").write_text(json.dumps(config))
    shapes = r"hybrid_bert.layers.0.ffn_in.weight is \[64, 32\] in model.safetensors, the config needs \[128, 32\]"
    with pytest.raises(
        PushError, match=rf"{copy / 'model.safetensors'} does not match {copy / 'config.json'}: {shapes}"
    ):
        main([str(copy), "--repo-id", REPO_ID, "--dry-run"], api=RecordingHfApi(tmp_path / "received"))


def test_config_without_auto_map_is_refused(run_dir, tmp_path):
    """A config.json without auto_map cannot load as remote code: refused, nothing called."""
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint-*"))
    config = json.loads((copy / "config.json").read_text())
    del config["auto_map"]
    (copy / "config.json").write_text(json.dumps(config))
    api = RecordingHfApi(tmp_path / "received")
    with pytest.raises(PushError, match="no auto_map entry for AutoConfig, AutoModelForMaskedLM"):
        main([str(copy), "--repo-id", REPO_ID], api=api)
    assert api.calls == []


def test_card_without_results_is_refused(run_dir, tmp_path):
    """A run whose curve holds no evaluation gives a card without results: refused, nothing called."""
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint-*"))
    save_curve(copy, [])
    api = RecordingHfApi(tmp_path / "received")
    with pytest.raises(PushError, match="has no results: mlm_curve.json holds no held-out evaluation"):
        main([str(copy), "--repo-id", REPO_ID], api=api)
    assert api.calls == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--repo-id", REPO_ID], "Give one of RUN_DIR"),
        (["--cards", "ZOO"], "--cards needs --weights_dir"),
        (["RUN"], "RUN_DIR needs --repo-id ORG/NAME"),
        (["RUN", "--repo-id", "no-namespace"], "has no namespace"),
        (["RUN", "--repo-id", "org/bad name"], "Invalid repo id"),
        (["--zoo", "ZOO"], "--zoo needs --namespace ORG"),
    ],
)
def test_bad_arguments_are_refused(run_dir, tmp_path, argv, message):
    """Inconsistent arguments fail with one message naming what to give."""
    argv = [str(run_dir) if arg == "RUN" else str(run_dir.parent) if arg == "ZOO" else arg for arg in argv]
    with pytest.raises(PushError, match=message):
        main(argv, api=RecordingHfApi(tmp_path))


def test_missing_token_fails_fast_with_one_message(run_dir, tmp_path):
    """No HF_TOKEN and an empty HF_HOME: one line on stderr naming HF_TOKEN and `hf auth login`, exit status 1."""
    environment = {name: value for name, value in os.environ.items() if name not in HUB_ENVIRONMENT}
    environment.update(HF_HOME=str(tmp_path / "empty_hf_home"), HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    command = [sys.executable, str(REPO / "recipes" / "push_to_hub.py"), str(run_dir), "--repo-id", REPO_ID]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "push_to_hub.py: No Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)."
    )
    assert "Traceback" not in result.stderr


@contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a Hub that hangs."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.mark.parametrize("endpoint_kind", ["closed port", "silent server"])
def test_unreachable_endpoint_fails_fast_with_one_message(run_dir, monkeypatch, capsys, endpoint_kind):
    """A closed port or a silent server fails within the check's timeout, with one message and the token unprinted."""
    token = "hf_dummy_never_printed"
    monkeypatch.setenv("HF_TOKEN", token)
    with silent_listener() as silent_port:
        port = free_port() if endpoint_kind == "closed port" else silent_port
        api = HfApi(endpoint=f"http://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(PushError) as error:
            main([str(run_dir), "--repo-id", REPO_ID], api=api)
        elapsed = time.monotonic() - started
    expected = f"Cannot reach the Hub at http://127.0.0.1:{port} within {HUB_CHECK_TIMEOUT_S:g} s"
    assert str(error.value).startswith(expected)
    assert elapsed < HUB_CHECK_TIMEOUT_S + 5  # planning and staging included
    output = capsys.readouterr()
    assert token not in output.out + output.err + str(error.value)


class RejectingHub(BaseHTTPRequestHandler):
    """Answers every request with 401, as the Hub does for an invalid token."""

    def do_GET(self):
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass  # keep the test output clean


@contextmanager
def rejecting_hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RejectingHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_rejected_token_fails_with_one_message(run_dir, monkeypatch, capsys):
    """A Hub that answers 401 to the token check: one message asking for a valid token, which it never prints."""
    token = "hf_dummy_never_printed"
    monkeypatch.setenv("HF_TOKEN", token)
    with rejecting_hub() as endpoint, pytest.raises(PushError) as error:
        main([str(run_dir), "--repo-id", REPO_ID], api=HfApi(endpoint=endpoint))
    assert str(error.value) == (
        f"The Hub at {endpoint} rejected the token: run `hf auth login` or set HF_TOKEN to a valid token."
    )
    output = capsys.readouterr()
    assert token not in output.out + output.err


# --- the real download side: olah serving what was uploaded ----------------------------------------------------


def commit_revisions(repo: Path, revisions: dict[str, Path]) -> None:
    """A git repo whose branch `name` holds exactly the files of `revisions[name]` (main first)."""
    repo.mkdir(parents=True)
    git(repo, "init", "-b", "main")
    for branch, folder in revisions.items():
        if branch != "main":
            git(repo, "checkout", "-b", branch)
            git(repo, "rm", "-rq", ".")
        shutil.copytree(folder, repo, dirs_exist_ok=True)
        git(repo, "add", "-A")
        git(repo, "commit", "-m", f"{branch}: the folder push_to_hub.py uploaded")
    git(repo, "checkout", "main")


# Runs in a fresh process against the mirror. The pipeline loads from the snapshot folder, not by repo id: olah answers
# 401 for a tree path that does not exist, which AutoTokenizer probes (additional_chat_templates) when given a repo id.
CLIENT = """
import json, sys
from pathlib import Path
import torch
from huggingface_hub import HfApi, ModelCard, snapshot_download
from transformers import AutoModelForMaskedLM, pipeline

repo_id, branch, input_ids, output = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
ids = torch.tensor([input_ids])
logits = {}
for revision in ("main", branch):
    model = AutoModelForMaskedLM.from_pretrained(repo_id, revision=revision, trust_remote_code=True).eval()
    with torch.no_grad():
        logits[revision] = model(input_ids=ids).logits
folder = snapshot_download(repo_id)
fill_mask = pipeline("fill-mask", model=folder, trust_remote_code=True)
torch.save(logits, output + ".pt")
refs = HfApi().list_repo_refs(repo_id)
with open(output + ".json", "w") as f:
    json.dump({
        "snapshot": sorted(path.relative_to(folder).as_posix() for path in Path(folder).rglob("*") if path.is_file()),
        "fill_mask": fill_mask("the capital of france is [MASK]."),
        "model_index": ModelCard.load(repo_id).data.to_dict()["model-index"],
        "branches": sorted(ref.name for ref in refs.branches),
    }, f)
"""


@pytest.mark.slow
def test_olah_serves_what_was_pushed_to_transformers_and_huggingface_hub(pushed_run, run_dir, tmp_path):
    """olah serving the uploaded folders: from_pretrained logits, snapshot + pipeline, card and branch all match."""
    step = checkpoint_branch(run_dir)
    received = pushed_run.received / REPO_ID
    commit_revisions(tmp_path / "mirrors" / "models" / REPO_ID, {"main": received / "main", step: received / step})
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    input_ids = tokenizer("the capital of france is [MASK].")["input_ids"]
    environment = {name: value for name, value in os.environ.items() if name not in HUB_ENVIRONMENT}
    with serve_olah(tmp_path / "mirrors", tmp_path) as endpoint:
        environment.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "empty_hf_home"))
        command = [sys.executable, "-c", CLIENT, REPO_ID, step, json.dumps(input_ids), str(tmp_path / "client")]
        result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    served = torch.load(tmp_path / "client.pt")
    for revision, folder in (("main", run_dir), (step, run_dir / checkpoint_name(run_dir))):
        local = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
        with torch.no_grad():
            expected = local(input_ids=torch.tensor([input_ids])).logits
        torch.testing.assert_close(served[revision], expected)
    report = json.loads((tmp_path / "client.json").read_text())
    assert set(report["snapshot"]) == files_under(received / "main")
    assert len(report["fill_mask"]) == 5 and all("[MASK]" not in guess["sequence"] for guess in report["fill_mask"])
    assert report["model_index"] == build_card(run_dir, REPO_ID).data.to_dict()["model-index"]
    assert report["branches"] == ["main", step]
