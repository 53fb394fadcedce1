"""MLM-accuracy curves: the HBERT paper's Figure 3 axes (accuracy vs wall-clock) and accuracy vs tokens seen, which
separates a model's speed from its sample efficiency."""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from recipes.records import CurveRecord

CURVE_FILE = "mlm_curve.json"
CURVE_FIELDS = ("elapsed_s", "tokens_seen", "step", "accuracy", "loss")


def load_curve(run_dir: str | Path, name: str = CURVE_FILE) -> list[dict]:
    path = Path(run_dir) / name
    return CurveRecord.read(path).points if path.is_file() else []


def save_curve(
    run_dir: str | Path, points: list[dict], name: str = CURVE_FILE, fields: tuple[str, ...] = CURVE_FIELDS
) -> None:
    CurveRecord(fields=list(fields), points=points).write(Path(run_dir) / name)


def plot_curves(
    curves: dict[str, list[dict]],
    path: str | Path,
    title: str = "",
    metric: str = "accuracy",
    ylabel: str = "held-out MLM accuracy (%)",
) -> None:
    """One line per labelled curve, two panels: `metric` (×100) vs wall-clock minutes and vs tokens seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_time, by_tokens) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    if len(curves) > len(plt.rcParams["axes.prop_cycle"]):  # more lines than default colours: no repeated colour
        for axis in (by_time, by_tokens):
            axis.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    for label, points in curves.items():
        accuracy = [100 * p[metric] for p in points]
        by_time.plot([p["elapsed_s"] / 60 for p in points], accuracy, marker="o", markersize=3, label=label)
        by_tokens.plot([p["tokens_seen"] / 1e6 for p in points], accuracy, marker="o", markersize=3, label=label)
    by_time.set_xlabel("training wall-clock (minutes, evaluation and saving excluded)")
    by_tokens.set_xlabel("tokens seen (millions)")
    by_time.set_ylabel(ylabel)
    for axis in (by_time, by_tokens):
        axis.grid(alpha=0.3)
    by_tokens.legend(loc="lower right", fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


class EvaluationCurveCallback(TrainerCallback):
    """Records each evaluation's `metric` against the budget clock (any object with `elapsed_s`) and tokens seen, and
    rewrites the curve's JSON and PNG each time. Subclasses name the metric, the files and the log line, and any
    `extra_metrics` recorded beside the plotted one."""

    metric, curve_file, plot_file, ylabel = "accuracy", CURVE_FILE, "mlm_curve.png", "held-out MLM accuracy (%)"
    extra_metrics: tuple[str, ...] = ()

    def __init__(self, clock, output_dir: Path, tokens_per_step: int, points: list[dict], title: str):
        self.clock, self.output_dir, self.tokens_per_step = clock, output_dir, tokens_per_step
        self.points, self.title = points, title

    def describe(self, point: dict) -> str:
        return f"{self.metric} {point[self.metric]:.4f}, loss {point['loss']:.4f}"

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        point = {
            "elapsed_s": round(self.clock.elapsed_s, 3),
            "tokens_seen": state.global_step * self.tokens_per_step,
            "step": state.global_step,
            self.metric: metrics[f"eval_{self.metric}"],
            **{name: metrics[f"eval_{name}"] for name in self.extra_metrics},
            "loss": metrics["eval_loss"],
        }
        self.points.append(point)
        save_curve(self.output_dir, self.points, self.curve_file, tuple(point))
        staging = self.output_dir / f"{self.plot_file}.tmp.png"  # whole or not at all, like the JSON
        plot_curves({self.title: self.points}, staging, self.title, metric=self.metric, ylabel=self.ylabel)
        staging.replace(self.output_dir / self.plot_file)
        print(
            f"[{point['elapsed_s']:.0f}/{self.clock.budget_s:.0f} s] step {point['step']}, {self.describe(point)}",
            flush=True,
        )
