# Enclave: `make demo` runs the product, `make test` runs the tests. Both install what
# they need (a virtualenv with the pinned packages, the local model, Debian chromium).

VENV    := .venv
PY      := $(VENV)/bin/python
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP   := $(VENV)/.installed

.PHONY: demo test install system-deps lint bench clean

demo: install
	$(VENV)/bin/enclave dev

test: install system-deps
	$(PY) -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "Installing Enclave (the first time, llama-cpp-python compiles for a few minutes)..."
	$(PY) -m pip install --quiet -e '.[local-model,test]'
	@touch $@

# Browser tests drive Debian's chromium (never a downloaded browser).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	@test -x /usr/bin/redis-server || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server; }

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy enclave

bench: install
	$(PY) bench/chat_overhead.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
