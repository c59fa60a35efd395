# Mutation testing of the core modules (mutmut; what and with which tests: [tool.mutmut] in
# pyproject.toml). Not part of `make test`: see docs/mutation.md for how long it takes.
# `make mutate` prints the score per module and every mutant that lived, and fails under 90 %.
MUTMUT_STAMP := $(VENV)/.mutmut-installed
MUTATE_JOBS ?= 2

.PHONY: mutate

$(MUTMUT_STAMP): $(STAMP)
	$(BIN)/pip install -q "mutmut==3.8.1"
	touch $@

mutate: $(MUTMUT_STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children $(MUTATE_JOBS)
	$(BIN)/python scripts/mutation_report.py
