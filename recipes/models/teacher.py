"""A pretrained BERT as a teacher (a folder, a Hub id, or a named offline checkpoint), checked before anything loads,
and the hybrid student made of it (HBERT §4.4)."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModel, PreTrainedModel

from modeling import HybridBertModel
from recipes.data import assets
from recipes.models.references import require_model_type, resolve_model
from recipes.models.starting_model import source_settings
from recipes.training.pretrain_arguments import parse_overrides


def teacher_source(name: str) -> str:
    """A named checkpoint's local folder, else the directory or Hub id as given."""
    return str(assets.fetch(assets.NAMED_CHECKPOINTS[name])) if name in assets.NAMED_CHECKPOINTS else name


def teacher_folder(name: str) -> Path:
    """The teacher's local folder, with its config and weights checked (`resolve_model`) and its type a BERT: every
    error names the argument and the file, before anything else is done."""
    folder = resolve_model(name, argument="--teacher")
    require_model_type(folder, ("bert",), "--teacher", name, hint="Distillation's teacher is an HF BERT.")
    return folder


def load_teacher(name: str) -> PreTrainedModel:
    return AutoModel.from_pretrained(teacher_folder(name)).eval()


def build_student(
    teacher: PreTrainedModel, variant: str, keep_source_settings: bool, config_overrides: str | None
) -> tuple[HybridBertModel, dict]:
    """The `variant` hybrid initialised from the teacher (with the teacher's settings, or the variant's own), and
    from_bert's loading info. BERT's pooler is kept but frozen: the loss does not reach it, and frozen it is no unused
    trainable parameter for DDP."""
    overrides = {
        **(source_settings(teacher.config) if keep_source_settings else {}),
        **parse_overrides(config_overrides),
    }
    student, info = HybridBertModel.from_bert(teacher, variant=variant, output_loading_info=True, **overrides)
    if student.pooler is not None:
        student.pooler.requires_grad_(False)
    return student, info
