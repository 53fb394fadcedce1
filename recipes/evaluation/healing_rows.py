"""A healed student beside its teacher, as the probe records name it and the healing table and the healed cards
write it: one row per setting (the same for every seed), and the cells of agreement, healing gain and protocol."""

from __future__ import annotations

TEACHER = "teacher"
SOURCE_SETTINGS = ", teacher's settings"


def conversion_name(variant: str, keep_source_settings: bool) -> str:
    """A conversion of the teacher into `variant` whatever its training (the rows of one architecture): how latency
    tables name it."""
    return variant + (SOURCE_SETTINGS if keep_source_settings else "")


def row_name(described: dict) -> str:
    """The row an encoder belongs to: the same for every seed of one setting."""
    if described["kind"] == TEACHER:
        return TEACHER
    if described["kind"] == "student":  # a folder without a run record: its own row
        return f"student {described['path']}"
    settings = SOURCE_SETTINGS if described["keep_source_settings"] else ""
    if described["kind"] == "unhealed":
        return f"{described['variant']}, not healed{settings}"
    if described["kind"] == "healed":
        return f"{described['variant']}, {described['objective']} {described['steps']} steps{settings}"
    raise ValueError(f"A probe record describes an encoder of unknown kind {described['kind']!r}.")


def protocol_text(task: str, settings: dict) -> str:
    """One task's fine-tuning protocol in words, from the settings its records share."""
    head = "mean-pooled" if settings.get("classifier_pooling") == "mean" else "[CLS]-pooler"
    samples = (
        f"{settings['max_train_samples']:,} training examples" if settings["max_train_samples"] else "full training set"
    )
    epochs = settings["num_train_epochs"]
    grid = settings.get("learning_rate_grid")
    rate = (
        f"lr chosen on validation from {', '.join(f'{r:g}' for r in grid)}"
        if grid
        else f"lr {settings['learning_rate']:g}"
    )
    return (
        f"{task}: {head} classifier, {samples}, {epochs:g} epoch{'s' if epochs != 1 else ''} at {rate}, "
        f"batch {settings['batch_size']}, {settings['max_seq_length']} tokens, epoch kept by validation {settings['selected_by']}"
    )


def agreement_text(result: dict | None) -> str:
    """An agreement's mean ± sd over seeds, as the table and the cards write it."""
    if result is None:
        return "–"
    return f"{result['mean']:.3f}" + (f" ± {result['sd']:.3f}" if result["sd"] is not None else "")


def gain_cell(result: dict | None) -> str:
    if result is None:
        return "–"
    interval = f" [{100 * result['low']:+.1f}, {100 * result['high']:+.1f}]" if "low" in result else ""
    return f"{100 * result['mean']:+.1f}{interval} (n={len(result['seeds'])})"
