"""The healing frontier's table and plot (the endpoints of `FRONTIER.md`), from its gathered fine-tuning records and
its layouts' latency alone.

    python -m studies.healing.frontier_table     # results/heal/frontier/table.json, table.md and frontier.png

Per point (a mixer and k), arm (unhealed, healed) and task: fine-tuned test accuracy as a share of MiniLM's with its
interval, whether the point keeps ≥ 97%, and the primary endpoint per mixer (the statistics: `frontier_verdicts`);
the point estimate beside each verdict, and the noise floor, MiniLM against itself at other seeds (seed s against
seed s + 1, cyclically): how close to 100% the test can come. Latency is each point's ratio to
`from_bert(minilm, "bert")` at batch 8 × 512 (`frontier.json`); the target is ≤ 0.80 (1.25× faster;
`frontier_latency`). The rate check, exploratory: at the largest k and the choosing seed, each arm's fine-tuning at
the rate it chose itself on validation against the one at MiniLM's rate.
"""

from __future__ import annotations

import operator
from pathlib import Path

from recipes.cards.markdown import markdown_table, share_interval, signed_interval
from recipes.records import FRONTIER_PLOT_FILE, FinetuningRecord, FrontierRecord, FrontierTable, write_text_atomic
from recipes.training.arguments import parse_args
from studies.healing import frontier
from studies.healing.frontier_latency import LATENCY_SHAPE, LATENCY_TARGET, latency_text, point_latency
from studies.healing.frontier_runs import (
    ARMS,
    RATE_CHECK,
    FrontierRunArguments,
    chosen_rates,
    model_name,
    point_label,
    units,
)
from studies.healing.frontier_verdicts import (
    DRAWS,
    TASKS,
    THRESHOLD,
    accuracy,
    compared,
    gain,
    keeps,
    noise_floor,
    primary,
    share,
    stopped_at,
)
from studies.planner import Step


def gathered(
    args: FrontierRunArguments,
    label: str | None,
    arm: str | None,
    task: str,
    planned: dict[str, Step],
    seeds: list[int] | None = None,
    suffix: str = "",
) -> dict[int, FinetuningRecord]:
    """{seed: record} of a model's fine-tunings on `task` among the gathered records (the teacher's: no label), each
    only where it is the record its planned step would make now (made at the chosen rate, with the point's layout).
    `suffix` names the model's other fine-tunings (the rate check's), `seeds` narrows `--seeds`."""
    found = {}
    for seed in args.seeds if seeds is None else seeds:
        name = f"{model_name(args, label, arm, seed)}{suffix}-{task}"
        path = Path(args.results_dir) / "finetuned" / f"{name}.json"
        if path.is_file() and name in planned and planned[name].current(path):
            found[seed] = FinetuningRecord.read(path)
    return found


def stop_text(stopped: dict, threshold: float) -> str:
    """The measurement that stopped a primary sequence, with the bootstrap's own error at its bound."""
    share, spread = stopped["share_of_teacher"], stopped["low_over_generator_seeds"]
    return (
        f"k = {stopped['k']} healed: {100 * share['mean']:.1f}% of MiniLM's {stopped['task']} accuracy at MiniLM's "
        f"learning rate, 95% interval [{100 * share['low']:.2f}, {100 * share['high']:.1f}], its lower bound "
        f"{100 * (threshold - share['low']):.2f} points under {100 * threshold:.0f}% (the declared {DRAWS:,}-resample "
        f"bootstrap; at {spread['seeds']} other generator seeds the bound is {100 * spread['min']:.2f} to "
        f"{100 * spread['max']:.2f}, at {stopped['low_at_more_draws']['draws']:,} resamples "
        f"{100 * stopped['low_at_more_draws']['low']:.2f})"
    )


def rate_check(args: FrontierRunArguments, planned: dict[str, Step]) -> dict[str, dict]:
    """The exploratory rate check (FRONTIER.md): at the largest k and the choosing seed, each arm fine-tuned over the
    grid as well. Per point, arm and task: the rate that arm chose on validation, each rate's validation macro-F1, and
    its test accuracy at its own rate minus at MiniLM's (one seed: the interval is over test rows); per point and task,
    the healing gain at each arm's own rate beside the one at MiniLM's, at that seed. It sizes the one rate's bias and
    decides nothing."""
    if not args.learning_rate_from_teacher:
        return {}
    k, seeds = max(args.counts), [args.choosing_seed]
    checks = {}
    for mixer in args.mixers:
        label = point_label(mixer, k)
        pairs = [(arm, task) for arm in ARMS for task in args.tasks]
        own = {pair: gathered(args, label, *pair, planned, seeds, f"-{RATE_CHECK}") for pair in pairs}
        fixed = {pair: gathered(args, label, *pair, planned, seeds) for pair in pairs}
        arms = {arm: {task: chosen_rate(own[arm, task], fixed[arm, task]) for task in args.tasks} for arm in ARMS}
        checks[label] = {
            "k": k,
            "seed": args.choosing_seed,
            "arms": arms,
            "healing_gain": {
                task: {
                    "at_own_rates": gain(own["healed", task], own["unhealed", task]),
                    "at_teachers_rate": gain(fixed["healed", task], fixed["unhealed", task]),
                }
                for task in args.tasks
            },
        }
    return checks


def chosen_rate(own: dict[int, FinetuningRecord], fixed: dict[int, FinetuningRecord]) -> dict | None:
    """A model's fine-tuning over the grid against the one at the teacher's rate (one seed): the rate it chose, each
    rate's validation macro-F1, and the test accuracy its choice gains."""
    if not own:
        return None
    (record,) = own.values()
    return {
        "learning_rate": record.selected_search_entry["learning_rate"],
        "validation_macro_f1": {
            str(entry["learning_rate"]): entry["macro_f1"] for entry in record.learning_rate_search
        },
        "own_rate_minus_teachers": compared(own, fixed, operator.sub),
    }


def build_table(args: FrontierRunArguments) -> FrontierTable:
    missing = [task for task in TASKS if task not in args.tasks]
    if missing:
        raise ValueError(f"The frontier's verdict is on {' and '.join(TASKS)}; --tasks lacks {', '.join(missing)}.")
    layouts = FrontierRecord.read(args.layouts)
    planned = {step.name: step for unit in units(args, chosen_rates(args)) for step in unit}
    teacher = {task: gathered(args, None, None, task, planned) for task in args.tasks}
    points, healed = {}, {}
    for mixer in args.mixers:
        for k in args.counts:
            label = point_label(mixer, k)
            arms, found = {}, {}
            for arm in ARMS:
                tasks = {}
                for task in args.tasks:
                    records = found[arm, task] = gathered(args, label, arm, task, planned)
                    tasks[task] = {"accuracy": accuracy(records), "share_of_teacher": share(records, teacher[task])}
                verdict = keeps(tasks, sorted(args.seeds))
                point_estimate = (
                    None
                    if verdict is None
                    else all(tasks[task]["share_of_teacher"]["mean"] >= THRESHOLD for task in TASKS)
                )
                arms[arm] = {"tasks": tasks, "keeps": verdict, "point_estimate_keeps": point_estimate}
            points[label] = {
                "mixer": mixer,
                "k": k,
                "layout": layouts.layouts[mixer][str(k)],
                **point_latency(layouts, frontier.point_name(mixer, k)),
                "arms": arms,
                "healing_gain": {task: gain(found["healed", task], found["unhealed", task]) for task in args.tasks},
            }
            healed[label] = {task: found["healed", task] for task in args.tasks}
    sequences = {
        mixer: primary([points[point_label(mixer, k)]["arms"]["healed"]["keeps"] for k in args.counts], args.counts)
        for mixer in args.mixers
    }
    for mixer, sequence in sequences.items():
        failing = [k for k in sorted(args.counts) if sequence["complete"] and (sequence["largest_k"] or 0) < k]
        if failing:
            label = point_label(mixer, failing[0])
            sequence["stopped_at"] = stopped_at(points[label], healed[label], teacher)
    return FrontierTable(
        threshold=THRESHOLD,
        latency_shape=LATENCY_SHAPE,
        denominators={
            "teacher": {task: accuracy(records) for task, records in teacher.items()},
            "noise floor (teacher against its other seeds)": {
                task: noise_floor(records) for task, records in teacher.items()
            },
        },
        points=points,
        primary=sequences,
        rate_check=rate_check(args, planned),
    )


def share_text(entry: dict | None) -> str:
    return "pending" if entry is None else f"{share_interval(entry)} (n={len(entry['seeds'])})"


def gain_text(entry: dict | None) -> str:
    return "pending" if entry is None else f"{signed_interval(entry, 100, 1)} (n={len(entry['seeds'])})"


def verdict_text(verdict: bool | None) -> str:
    return {None: "pending", True: "yes", False: "no"}[verdict]


def page(table: FrontierTable, tasks: list[str]) -> str:
    lines = [
        "# The healing frontier: fine-tuned accuracy against latency",
        "",
        "Generated by `python -m studies.healing.frontier_table` from the records in `finetuned/` and `frontier.json` "
        "(protocol fixed before any score: `studies/healing/FRONTIER.md`). A share is the point's mean test accuracy "
        "over seeds over MiniLM's, with a 95% bootstrap interval over seeds and test rows; a point keeps ≥ "
        f"{100 * table.threshold:.0f}% when the interval's lower bound is at least that on every task. Latency: "
        f'the ratio to `from_bert(minilm, "bert")` at batch {table.latency_shape.replace("x", " × ")} (below 1: faster), '
        "the mean over the frontier record's measurements with their range; the target (≤ "
        f"{LATENCY_TARGET:.2f}×) is decided by the record's 5th to 12th measurements: met when the 95% interval of "
        "their geometric mean lies at or below it, missed when above, else undecided.",
        "",
    ]
    teacher = table.denominators["teacher"]
    floor = table.denominators["noise floor (teacher against its other seeds)"]
    rows = [
        ["MiniLM", *(f"{100 * teacher[task]['mean']:.1f}% (n={len(teacher[task]['seeds'])})" if teacher[task]["mean"] is not None else "pending" for task in tasks)],
        ["noise floor: MiniLM's share against its other seeds", *(share_text(floor[task]) for task in tasks)],
    ]  # fmt: skip
    lines += [*markdown_table(["denominator", *tasks], rows), ""]
    header = ["point", "layout", "latency", *(f"{arm}: {task} share" for arm in ARMS for task in tasks)]
    header += [f"{arm} keeps ≥ {100 * table.threshold:.0f}% (point estimate)" for arm in ARMS]
    header += [f"healed − unhealed, {task} (pp, exploratory)" for task in tasks]
    rows = []
    for label, point in table.points.items():
        latency = latency_text(point)
        shares = [share_text(point["arms"][arm]["tasks"][task]["share_of_teacher"]) for arm in ARMS for task in tasks]
        verdicts = [
            f"{verdict_text(point['arms'][arm]['keeps'])} ({verdict_text(point['arms'][arm]['point_estimate_keeps'])})"
            for arm in ARMS
        ]
        gains = [gain_text(point.get("healing_gain", {}).get(task)) for task in tasks]
        rows.append([label, "".join(mixer[0] for mixer in point["layout"]), latency, *shares, *verdicts, *gains])
    lines += [
        *markdown_table(header, rows),
        "",
        "**Primary endpoint** (k = 2, 3, … in order, up to the first whose healed arm does not keep the threshold):",
        "",
    ]
    for mixer, result in table.primary.items():
        if not result["complete"]:
            lines.append(f"- {mixer}: pending (not every point and seed is in)")
        else:
            largest = "none shown to keep it" if result["largest_k"] is None else f"k = {result['largest_k']}"
            stopped = result.get("stopped_at")
            lines.append(
                f"- {mixer}: {largest}" + (f"; stopped at {stop_text(stopped, table.threshold)}" if stopped else "")
            )
    if table.rate_check:
        lines += ["", *rate_check_lines(table.rate_check, tasks)]
    return "\n".join(lines) + "\n"


def rate_check_lines(checks: dict[str, dict], tasks: list[str]) -> list[str]:
    def chosen(entry: dict | None) -> str:
        if entry is None:
            return "pending"
        scores = ", ".join(f"{rate}: {score:.3f}" for rate, score in entry["validation_macro_f1"].items())
        return f"{entry['learning_rate']:g} ({scores})"

    def moved(entry: dict | None) -> str:
        return "pending" if entry is None else gain_text(entry["own_rate_minus_teachers"])

    first = next(iter(checks.values()))
    lines = [
        f"**Rate check** (exploratory; k = {first['k']}, seed {first['seed']}): each arm fine-tuned over the grid as well, its rate "
        "chosen on its own validation macro-F1, against the one-rate fine-tuning at MiniLM's rate. It sizes the one "
        "rate's bias (`FRONTIER.md`) and changes no verdict; its intervals are over test rows only.",
        "",
    ]
    header = ["point", "arm"]
    header += [f"{task}: rate chosen (validation macro-F1 per rate)" for task in tasks]
    header += [f"{task}: own rate − MiniLM's, test accuracy (pp)" for task in tasks]
    rows = [
        [label, arm, *(chosen(check["arms"][arm][task]) for task in tasks),
         *(moved(check["arms"][arm][task]) for task in tasks)]
        for label, check in checks.items()
        for arm in ARMS
    ]  # fmt: skip
    lines += [*markdown_table(header, rows), ""]
    header = ["point", *(f"healed − unhealed, {task} (pp): at MiniLM's rate / at each arm's own" for task in tasks)]
    rows = [
        [label, *(f"{gain_text(gains['at_teachers_rate'])} / {gain_text(gains['at_own_rates'])}"
                  for gains in (check["healing_gain"][task] for task in tasks))]
        for label, check in checks.items()
    ]  # fmt: skip
    return lines + markdown_table(header, rows)


def plot(table: FrontierTable, tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), sharey=True, squeeze=False)
    colours = {"additive": "tab:blue", "pooling": "tab:orange"}
    for axis, task in zip(axes[0], tasks):
        for point in table.points.values():
            for arm, marker in (("unhealed", "o"), ("healed", "s")):
                entry = point["arms"][arm]["tasks"][task]["share_of_teacher"]
                if entry is None or point["latency_ratio"] is None:
                    continue
                axis.errorbar(
                    point["latency_ratio"], 100 * entry["mean"],
                    yerr=[[100 * (entry["mean"] - entry["low"])], [100 * (entry["high"] - entry["mean"])]],
                    marker=marker, color=colours[point["mixer"]], capsize=2,
                    markerfacecolor="white" if arm == "unhealed" else colours[point["mixer"]],
                    label=f"{point['mixer']}, {arm}",
                )  # fmt: skip
                axis.annotate(f"k={point['k']}", (point["latency_ratio"], 100 * entry["mean"]), fontsize="x-small")
        axis.axhline(100 * table.threshold, color="grey", linestyle="--", linewidth=1)
        axis.set_xlabel(f"latency ÷ MiniLM in this implementation, batch {table.latency_shape.replace('x', ' × ')}")
        axis.set_title(task)
        axis.grid(alpha=0.3)
        handles, labels = axis.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        if unique:
            axis.legend(unique.values(), unique.keys(), fontsize="small")
    axes[0][0].set_ylabel("fine-tuned test accuracy, % of MiniLM's")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> FrontierTable:
    (args,) = parse_args((FrontierRunArguments,), argv)
    table = build_table(args)
    results = Path(args.results_dir)
    table.write(results / "table.json")
    write_text_atomic(results / "table.md", page(table, args.tasks))
    plot(table, args.tasks, results / FRONTIER_PLOT_FILE)
    print(page(table, args.tasks), flush=True)
    return table


if __name__ == "__main__":
    main()
