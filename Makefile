# The two commands of the README:
#   make demo   set everything up and run the main job on the embedded default (local folder + SQLite)
#   make test   set everything up and run the whole test suite (needs PostgreSQL; .ci/run starts it)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOME_DIR ?= $(CURDIR)/mediaworker-data

.PHONY: setup setup-test demo test bench clean

$(BIN)/mediaworker: pyproject.toml
	bash docker/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/mediaworker

tests/browser/node_modules/hls.js/dist/hls.min.js: tests/browser/package-lock.json
	bash docker/install-system-deps.sh --browser
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	touch $@

setup-test: setup tests/browser/node_modules/hls.js/dist/hls.min.js

demo: setup
	MEDIAWORKER_HOME=$(HOME_DIR) $(BIN)/mediaworker process media_fixtures/city_cc0.mp4
	MEDIAWORKER_HOME=$(HOME_DIR) $(BIN)/mediaworker process media_fixtures/music_hyperrogue_20s.ogg

test: setup-test
	$(BIN)/ruff check pipelines workers tests bench
	$(BIN)/mypy pipelines workers
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/ladder_bench.py
	bash docker/install-system-deps.sh --bench
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/features_bench.py

clean:
	rm -rf $(VENV) tests/browser/node_modules mediaworker-data
