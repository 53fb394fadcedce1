"""How runs are named: one rule for every run directory, study step and Hub repo.

A name is its parts joined by '-', empty parts left out, then `seed<N>` when the run has a seed:
`bert+dropmask-tiny-1m-seed1`, `hbert-v1-5m-seed2`, `hbert-v2-minilm-distilled-600steps-seed3`. Hub repo names allow
no '+', so `hub=True` spells DropMask `-dropmask`."""

from __future__ import annotations

from pathlib import Path

from modeling import VARIANTS

DROP_MASK_SUFFIX = "+dropmask"


def run_name(*parts: str | None, seed: int | None = None, hub: bool = False) -> str:
    name = "-".join([*(part for part in parts if part), *([f"seed{seed}"] if seed is not None else [])])
    return name.replace(DROP_MASK_SUFFIX, "-" + DROP_MASK_SUFFIX[1:]) if hub else name


def init_part(init_from: str | None) -> str | None:
    """The name part of a run started from a checkpoint: `init-<checkpoint folder>`."""
    return f"init-{Path(init_from).name}" if init_from else None


def variant_label(variant: str, drop_mask: bool) -> str:
    """How the zoo names a variant: 'bert', or 'bert+dropmask' with DropMask."""
    return variant + (DROP_MASK_SUFFIX if drop_mask else "")


def split_variant(label: str) -> tuple[str, bool]:
    """'bert+dropmask' → ('bert', True); the variant must be a named one."""
    variant = label.removesuffix(DROP_MASK_SUFFIX)
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown variant {label!r}: one of {', '.join(VARIANTS)}, optionally with '{DROP_MASK_SUFFIX}'."
        )
    return variant, variant != label
