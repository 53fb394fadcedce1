"""One rank of a multi-process run of the pretraining (or distillation) recipe, for tests/test_distributed.py.

    accelerate launch ... tests/distributed_worker.py --report_dir DIR [--clock_rate 1.5] [--premasked] -- <recipe args>
    accelerate launch ... tests/distributed_worker.py --report_dir DIR --recipe distill -- <distillation args>
    torchrun ... tests/distributed_worker.py --report_dir DIR -- <recipe args>
    python tests/distributed_worker.py --report_dir DIR -- <recipe args>        # one process

Runs the real `recipes.pretrain.main(argv, now=..., callbacks=[...])` (or `recipes.distill.main`, whose budget
callback comes from the same place) and writes `DIR/rank{R}.json`: what `main`
returned on that rank; per optimizer step the agreed budget clock, this rank's clock reading before the agreement and
the learning rate; the Trainer's log history; and a sha256 of the final parameters.

- `--clock_rate F` makes the budget clock of every rank except rank 0 run F times faster than real time (a skewed
  clock injected through `main(now=...)`).
- `--save_init_weights F` / `--init_weights F` save the weights the recipe initialised / start from saved weights
  instead (so runs on different world sizes can start from the same weights); `recipe_init_sha256` in the report is
  the recipe's own initialisation either way.
- `--premasked` trains on blocks masked once with a fixed seed (`recipes.data.blocks.mask_once`), which the recipe's collator
  passes through unchanged (it passes through every example that carries `labels`): the training batches are then the
  same whatever the number of ranks, so losses can be compared across world sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from recipes import distill, pretrain  # noqa: E402
from recipes.data.blocks import mask_once  # noqa: E402
from recipes.training import run as training_run  # noqa: E402
from recipes.training.budget import TimeBudgetCallback  # noqa: E402


class ObservedBudgetCallback(TimeBudgetCallback):
    """The recipe's budget callback, unchanged; it only remembers its instance and each local (not yet agreed) clock
    reading, so the report can compare this rank's own clock with the agreed one."""

    instance: ObservedBudgetCallback | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        ObservedBudgetCallback.instance = self
        self.local_readings: list[float] = []
        read_local = self.clock.read_local

        def observed_read_local() -> float:
            value = read_local()
            self.local_readings.append(value)
            return value

        self.clock.read_local = observed_read_local


def parameter_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


class Recorder(TrainerCallback):
    """Per optimizer step (whatever its place among the callbacks): the agreed elapsed time, this rank's local reading
    of its clock before the agreement, and the learning rate the optimizer holds for the next step."""

    def __init__(self):
        self.steps: list[dict] = []
        self.final: dict = {}

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        budget = ObservedBudgetCallback.instance
        self.steps.append(
            {
                "step": state.global_step,
                "elapsed_s": budget.clock.elapsed_s,
                "local_elapsed_s": budget.local_readings[-1] if budget.local_readings else None,
                "lr": [group["lr"] for group in optimizer.param_groups],
            }
        )

    def on_train_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        self.final = {
            "parameters_sha256": parameter_sha256(model),
            "global_step": state.global_step,
            "log_history": state.log_history,
            "process_index": args.process_index,
            "world_size": args.world_size,
            "lr_scheduler": type(lr_scheduler).__name__,
            "optimizer": type(optimizer).__name__,
            "deepspeed": args.deepspeed_plugin is not None,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--report_dir", required=True)
    parser.add_argument("--recipe", choices=["pretrain", "distill"], default="pretrain")
    parser.add_argument("--clock_rate", type=float, default=1.0)
    parser.add_argument("--premasked", action="store_true")
    parser.add_argument("--save_init_weights", help="Save the weights the recipe initialised (rank 0) to this file")
    parser.add_argument("--init_weights", help="Start from these weights instead of the recipe's initialisation")
    options, recipe_argv = parser.parse_known_args()
    if recipe_argv[:1] == ["--"]:
        recipe_argv = recipe_argv[1:]
    rank = int(os.environ.get("RANK", "0"))

    training_run.TimeBudgetCallback = ObservedBudgetCallback
    if options.premasked:
        prepare = pretrain.prepare

        def prepare_premasked(spec, tokenizer, max_seq_length, mlm_probability, *args):
            data = prepare(spec, tokenizer, max_seq_length, mlm_probability, *args)
            return dataclasses.replace(data, train=mask_once(data.train, tokenizer, mlm_probability, spec.seed))

        pretrain.prepare = prepare_premasked

    build_model, recipe_init = pretrain.build_model, {}

    def build_model_observed(model_args, tokenizer, start=None):
        model = build_model(model_args, tokenizer, start)
        recipe_init["sha256"] = parameter_sha256(model)
        if options.save_init_weights and rank == 0:
            torch.save(model.state_dict(), options.save_init_weights)
        if options.init_weights:
            model.load_state_dict(torch.load(options.init_weights))
        return model

    pretrain.build_model = build_model_observed

    rate = options.clock_rate if rank > 0 else 1.0
    start = time.monotonic()

    def now() -> float:
        return start + rate * (time.monotonic() - start)

    recorder = Recorder()
    recipe = {"pretrain": pretrain, "distill": distill}[options.recipe]
    spent = recipe.main(recipe_argv, now=now, callbacks=[recorder])

    report = {
        "rank": rank,
        "clock_rate": rate,
        "recipe_init_sha256": recipe_init.get("sha256"),
        "spent": spent,
        "steps": recorder.steps,
        **recorder.final,
    }
    report_dir = Path(options.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / f"rank{rank}.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
