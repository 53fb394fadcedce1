"""The network side of a push: the token and the Hub checked within a few seconds, then the repos, uploads, branches
and the zoo's collection created."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import get_session

from recipes.publishing.plan import MAIN, PushError, PushPlan

COLLECTION_DESCRIPTION = "Hybrid BERT encoders (self, additive, pooling mixers) pretrained under wall-clock budgets."
# Long enough for a Hub across the world, short enough that a wrong endpoint fails at once instead of hanging.
HUB_CHECK_TIMEOUT_S = 5.0


@contextmanager
def request_timeout(seconds: float) -> Iterator[None]:
    """huggingface_hub's shared HTTP client waits forever by default; bound it for a check, then restore it."""
    session = get_session()
    previous = session.timeout
    session.timeout = httpx2.Timeout(seconds)
    try:
        yield
    finally:
        session.timeout = previous


def check_hub(api: HfApi) -> str:
    """The user the token belongs to; one clear PushError when there is no token or the Hub does not answer."""
    if not (api.token or get_token()):
        raise PushError("No Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access).")
    try:
        with request_timeout(HUB_CHECK_TIMEOUT_S):
            return api.whoami()["name"]
    except OfflineModeIsEnabled:
        raise PushError("HF_HUB_OFFLINE is set: unset it to push, or use --dry-run to see the plan.") from None
    except httpx2.TransportError as error:
        raise PushError(
            f"Cannot reach the Hub at {api.endpoint} within {HUB_CHECK_TIMEOUT_S:g} s ({type(error).__name__}): "
            "check the network, or HF_ENDPOINT. Nothing was created."
        ) from None
    except HfHubHTTPError as error:
        if error.response.status_code == 401:
            raise PushError(
                f"The Hub at {api.endpoint} rejected the token: run `hf auth login` or set HF_TOKEN to a valid token."
            ) from None
        raise PushError(
            f"{api.endpoint} answered HTTP {error.response.status_code} to a token check: is HF_ENDPOINT a Hub?"
        ) from None


def publish(api: HfApi, plan: PushPlan, staged: dict[tuple[str, str], Path]) -> None:
    for repo in plan.repos:
        api.create_repo(repo.repo_id, repo_type="model", private=plan.private, exist_ok=True)
        for upload in repo.uploads:
            if upload.revision != MAIN:
                api.create_branch(repo.repo_id, branch=upload.revision, repo_type="model", exist_ok=True)
            # delete_patterns="*": the revision ends up holding exactly the staged files, so a re-push drops files
            # that an earlier push had and this run no longer has (the Hub keeps .gitattributes regardless).
            api.upload_folder(
                repo_id=repo.repo_id,
                repo_type="model",
                folder_path=staged[repo.repo_id, upload.revision],
                revision=upload.revision,
                commit_message=f"{repo.summary} ({upload.source.name})",
                delete_patterns="*",
            )
    if plan.collection:
        collection = api.create_collection(
            plan.collection,
            namespace=plan.namespace,
            description=COLLECTION_DESCRIPTION,
            private=plan.private,
            exists_ok=True,
        )
        for repo in plan.repos:
            api.add_collection_item(
                collection.slug, item_id=repo.repo_id, item_type="model", note=repo.summary, exists_ok=True
            )
