# Pushbutton: `make run` starts the portal with its demo, `make test` runs the suite.
# Both create the virtual environment first when it is missing.

# The newest Python that works: 3.13, then 3.12, then python3 (pyenv shims answer
# for versions they cannot run, so each candidate is asked to run).
PYTHON ?= $(shell for p in python3.13 python3.12 python3; do \
	$$p -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench clean sshd

$(STAMP): pyproject.toml clients/cli/pyproject.toml requirements/constraints.txt
	@test -n "$(PYTHON)" || { echo "No Python 3.11+ found; set PYTHON=" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	# The `pushbutton` command for CI (its own package): the suite runs it as a pipeline would.
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ./clients/cli
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py load_demo
	$(BIN)/python manage.py serve

test: $(STAMP) sshd
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The tests deploy over SSH to a real OpenSSH server they start on loopback: install
# Debian's openssh-server when it is missing and we may (root with apt-get); otherwise
# those tests are skipped, saying why.
sshd:
	@test -x /usr/sbin/sshd || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "--- apt-get install openssh-server (the SSH target of the tests)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; \
	  else \
	    echo "openssh-server is missing and cannot be installed here: SSH tests will skip" >&2; \
	  fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf var/
