# Two user-facing targets: `make bench` (the main job) and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml or
# constraints.txt change.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: bench test lint clean seqgan-oracle

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

bench: $(STAMP)
	$(VENV)/bin/textgan bench --preset quick --out results/quick

# SeqGAN's Table 1 on the published oracle (hours per seed on 2 cores). Its finished cells are
# committed under experiments/, so the same command resumes from them on a fresh clone.
SEEDS ?= 3
seqgan-oracle: $(STAMP)
	$(VENV)/bin/textgan bench --preset seqgan-oracle --seeds $(SEEDS) --workers 1 \
		--out experiments/seqgan-oracle-paper-d

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) results runs
