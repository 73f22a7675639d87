# Two commands for a new user: `make demo` and `make test`. Both set up .venv first (once).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.equislt-installed

.PHONY: setup demo test bench paper clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) bash scripts/bootstrap.sh
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/equislt demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# the paper reproduction (under an hour on 2 cores: the total of the README's runs table), then the README's tables regenerated from its JSON
paper: $(STAMP)
	@for script in steerable ign mpnn scaling pensia laws sparse; do echo "== benchmarks/paper/$$script.py"; \
		$(PY) benchmarks/paper/$$script.py || exit 1; done
	$(PY) benchmarks/report.py --write

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
