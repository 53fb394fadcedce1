# The two commands a newcomer needs: `make test` and `make demo`. Both create or update the venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned: an unpinned resolve would pull several GB of CUDA wheels.
TORCH_SPEC := torch==2.13.0
STAMP := $(VENV)/.installed

# Every study's settings are an argument file (`python -m studies.zoo FILE.json` reproduces a target without make):
# - studies/demo/zoo.json: `make demo`'s small zoo on the embedded defaults (offline WikiText-2, TREC), three variants,
#   one-minute budgets. The tiny zoo's settings: short sequences and small batches give the few minutes of a budget
#   hundreds of optimizer steps; lr 1e-3 suits 4-layer, 128-wide models (the paper's 1e-4 is for base).
# - studies/demo/heal.json: hbert-v1 initialised from the pretrained all-MiniLM-L6-v2 (HBERT §4.4), keeping MiniLM's
#   settings in hbert-v1's layout (initialised so it agrees with MiniLM at 0.69, mean cosine on 200 TREC test
#   questions, against 0.09 with HBERT's settings, whose Sub-LN norms and sinusoidal positions start new), healed by
#   distillation for 4 minutes, then shown beside MiniLM.
# - studies/zoo/configs/matrix.json: `make zoo`'s full matrix (1 h 47 min on this 2-core CPU; re-running skips what
#   is complete); minilm-init.json: HBERT §4.4 at MiniLM's size (hbert-v1/v2 from MiniLM's weights and from scratch,
#   MiniLM itself as the reference); finetune-10-epochs-{1m,4m}.json: does the matrix's short fine-tuning (48 steps)
#   decide its ranking? bert, addbert, hbert-v1 and pool-hybrid at 1m, bert and pool-hybrid at 4m, fine-tuned for 10
#   epochs, all else equal, into their own records.
# - studies/healing/study.json: `make zoo-heal`, HBERT §4.4 at MiniLM's size (results/heal/table.md): each variant made
#   from all-MiniLM-L6-v2 and healed per seed by 600 steps of distillation or by MLM for the steps that take the same
#   time (results/heal/step_times.json, from `python -m studies.healing.study --measure_step_times`, 2 threads).
DEMO_HEALED := runs/demo/hbert-v1-minilm-distill-source-settings-4m
ZOO_CONFIGS := studies/zoo/configs

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
	$(BIN)/python -m studies.zoo studies/demo/zoo.json
	$(BIN)/python -m recipes.distill studies/demo/heal.json
	$(BIN)/python -m recipes.showcase --student $(DEMO_HEALED) --teacher minilm

zoo: venv
	$(BIN)/python -m studies.zoo $(ZOO_CONFIGS)/matrix.json
	$(BIN)/python -m studies.zoo $(ZOO_CONFIGS)/minilm-init.json
	$(BIN)/python -m studies.zoo $(ZOO_CONFIGS)/finetune-10-epochs-1m.json
	$(BIN)/python -m studies.zoo $(ZOO_CONFIGS)/finetune-10-epochs-4m.json

zoo-heal: venv
	$(BIN)/python -m studies.healing.study studies/healing/study.json

clean:
	rm -rf $(VENV) .pytest_cache
