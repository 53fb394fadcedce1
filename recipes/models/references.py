"""Model references: what the recipes' model arguments accept — a local folder, a named pinned checkpoint
(`recipes.data.assets.NAMED_CHECKPOINTS`, e.g. `minilm`) or a Hub repo id at a revision (a branch such as a pushed run's
`step-N`, a tag or a commit) — resolved to a local folder holding a config and weights. Each way a reference can be
wrong (no such folder or repo, no such revision, no weights, another architecture, no network) raises one error that
names the argument, before a recipe writes anything.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import validate_repo_id
from transformers import AutoTokenizer
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from recipes.data import assets
from recipes.data.input_files import check_weights, read_config, weight_files

WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
# What a model needs from a Hub repo besides its weights: configs (sentence-transformers' too), remote code and the
# tokenizer. TF, Flax and ONNX weights are left on the Hub.
HUB_NON_WEIGHT_PATTERNS = ("*.json", "*.py", "*.txt", "*.model")


def resolve_model(reference: str, revision: str | None = None, argument: str = "--model") -> Path:
    """The local folder behind `reference`, checked to hold `config.json` and weights; `revision` only for Hub ids."""
    named = reference in assets.NAMED_CHECKPOINTS
    local = Path(reference)
    if (named or local.exists()) and revision:
        raise ValueError(
            f"{argument} {reference!r} is not a Hub repo id; a revision ({revision!r}) applies to those only."
        )
    if named:
        folder = assets.fetch(assets.NAMED_CHECKPOINTS[reference])
    elif local.exists():
        if not local.is_dir():
            raise FileNotFoundError(f"{argument} {reference!r} is a file; give the folder a model was saved to.")
        folder = local
    elif looks_local(local):
        raise FileNotFoundError(
            f"{argument} {reference!r}: no such folder ({nearest_existing(local)} exists; check the path). A Hub repo "
            "id is ORG/NAME, and is looked up only when no folder of that name's parent exists here."
        )
    else:
        folder = download_from_hub(reference, revision, argument)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{argument} {reference!r}: {folder} has no config.json, so it is not a saved model.")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise FileNotFoundError(
            f"{argument} {reference!r}: {folder} holds no model weights (none of {', '.join(WEIGHT_FILES)}); "
            "a pretraining run saves them when it ends."
        )
    # A config.json that is not JSON, or weights that are truncated or do not match it, fail here, naming the file,
    # before any data is prepared.
    read_config(folder)
    if weight_files(folder):
        check_weights(folder)
    return folder


def looks_local(path: Path) -> bool:
    """Whether a reference that is no folder was meant as one: it is written as a path (./, ../, /, ~), has more than
    two parts (a Hub id has ORG/NAME), or its parent folder exists here."""
    text = str(path)
    if text.startswith((".", "/", "~")) or len(path.parts) > 2:
        return True
    return len(path.parts) == 2 and path.parent.is_dir()


def nearest_existing(path: Path) -> str:
    existing = next((parent for parent in path.absolute().parents if parent.is_dir()), Path("/"))
    return f"{existing}/"


def download_from_hub(repo_id: str, revision: str | None, argument: str) -> Path:
    """A snapshot of the model repo `repo_id` at `revision` (default branch when None) in the Hub cache: configs,
    code, tokenizer and one format of weights (safetensors when the repo has them)."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise FileNotFoundError(
            f"{argument} {repo_id!r} is neither a local folder, one of {list(assets.NAMED_CHECKPOINTS)}, "
            "nor a Hub repo id (ORG/NAME)."
        ) from None
    endpoint = constants.ENDPOINT
    try:
        info = model_info_at(HfApi(), repo_id, revision or constants.DEFAULT_REVISION)
        if info is not None:
            files = [sibling.rfilename for sibling in info.siblings or []]
            weights = "*.safetensors" if any(name.endswith(".safetensors") for name in files) else "pytorch_model*.bin*"
            patterns = [*HUB_NON_WEIGHT_PATTERNS, weights]
            folder = Path(snapshot_download(repo_id, revision=info.sha, allow_patterns=patterns))
    except RepositoryNotFoundError:
        raise FileNotFoundError(
            f"{argument} {repo_id!r} is no local folder and no model repo on {endpoint} "
            "(a private repo needs a token: `hf auth login` or HF_TOKEN)."
        ) from None
    except (HfHubHTTPError, httpx.HTTPError, OSError) as error:
        raise ConnectionError(
            f"{argument} {repo_id!r}: the Hub at {endpoint} could not be reached ({type(error).__name__})."
        ) from None
    if info is None:
        raise FileNotFoundError(f"{argument} {repo_id!r} has no revision {revision!r} on {endpoint}.")
    return folder


def model_info_at(api: HfApi, repo_id: str, revision: str):
    """The repo's info at `revision`; None when the repo exists without that revision."""
    try:
        return api.model_info(repo_id, revision=revision)
    except RevisionNotFoundError:
        return None
    except RepositoryNotFoundError:
        if revision == constants.DEFAULT_REVISION:
            raise
        # Some Hub servers answer "no such repo" for a revision the repo lacks: the default branch tells them apart.
        api.model_info(repo_id, revision=constants.DEFAULT_REVISION)
        return None


def model_type(folder: Path) -> str | None:
    return read_config(folder).get("model_type")


def require_model_type(folder: Path, accepted: tuple[str, ...], argument: str, reference: str, hint: str = "") -> None:
    found = model_type(folder)
    if found not in accepted:
        raise ValueError(
            f"{argument} {reference!r} is a {found!r} checkpoint; it takes {' or '.join(map(repr, accepted))}. {hint}".strip()
        )


def folder_tokenizer(folder: Path):
    """The tokenizer saved in `folder`, or the embedded bert-base-uncased one when it holds none."""
    if not (folder / "tokenizer_config.json").is_file():
        return assets.default_tokenizer()
    # A HybridBERT folder's config is remote code (auto_map) that AutoTokenizer reads; the tokenizer itself is BERT's.
    return AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
