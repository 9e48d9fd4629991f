# The two set-up commands: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: demo test docs lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The worked third-party plugin (examples/plugins/) is installed like any plugin would be.
EXAMPLE_PLUGIN := examples/plugins/gitops-plugin-example

$(VENV)/.installed-test: pyproject.toml $(EXAMPLE_PLUGIN)/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,kubernetes,docs]'
	$(BIN)/pip install --quiet -e $(EXAMPLE_PLUGIN)
	touch $@

## demo: reconcile the bundled example into a file tree, then heal drift made by hand
demo: $(VENV)/.installed
	rm -rf $(DEMO_OUT)
	@echo "== 1. first sync: everything is created"
	$(BIN)/gitops sync examples/app dir:$(DEMO_OUT) --prune
	@echo; echo "== 2. someone edits the live state by hand (drift)"
	sed -i 's/replicas: 2/replicas: 5/' $(DEMO_OUT)/shop/Deployment.apps/shop.yaml
	@echo; echo "== 3. gitops diff reports the drift (exit code 1)"
	$(BIN)/gitops diff examples/app dir:$(DEMO_OUT) || test $$? -eq 1
	@echo; echo "== 4. the next sync heals it; a sync after that changes nothing"
	$(BIN)/gitops sync examples/app dir:$(DEMO_OUT) --prune --no-diff
	$(BIN)/gitops sync examples/app dir:$(DEMO_OUT) --prune

## test: install what the tests need, then lint, type-check and run the whole suite
test: $(VENV)/.installed-test typecheck
	$(BIN)/ruff check gitops tests bench examples docs
	GITOPS_REQUIRE_EXAMPLE_PLUGIN=1 $(BIN)/pytest -q

## typecheck: mypy --strict on the package, the tests and the benchmarks. One run per test
## folder: each has its own conftest.py and helper modules imported by bare name.
TYPED_FOLDERS := tests tests/git tests/oci bench docs examples/kopf-operator examples/controller-loop \
    $(EXAMPLE_PLUGIN)/tests
typecheck: $(VENV)/.installed-test
	$(BIN)/mypy --strict gitops $(EXAMPLE_PLUGIN)/src
	@for d in $(TYPED_FOLDERS); do echo "mypy --strict $$d/*.py"; \
	    $(BIN)/mypy --strict $$d/*.py || exit 1; done

## docs: build the reference site (mkdocs.yml) into site/; any warning fails it
$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $@

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## bench: run every benchmark at the scale its issue names; fails if any budget is over
BENCHMARKS ?= plan_10k replan git_fetch oci_pull k8s_requests kustomize_render operator fleet images images_update
bench: $(VENV)/.installed-test
	@status=0; for b in $(BENCHMARKS); do \
	    echo "== bench/$$b.py"; \
	    (cd bench && ../$(BIN)/python $$b.py) || { echo "!! bench/$$b.py: over budget or failed"; status=1; }; \
	    echo; \
	done; exit $$status

clean:
	rm -rf $(VENV) $(DEMO_OUT) site .pytest_cache .mypy_cache .ruff_cache .hypothesis
