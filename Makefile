# Launchday. `make demo` and `make test` work on a fresh machine: they create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
PORT ?= 8000
# Exported, so settings see it too: SITE_URL (the links in emails) follows the port served.
export PORT
# uvicorn (config/serve.py): one process per core; in each, admissions wait on coroutines
# and the rest of Django runs on a pool of threads. make bench measures the choice.
WORKERS ?= $(shell nproc)

.PHONY: demo test serve bench lint install

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@echo "Installing into $(VENV) (once; a minute or two)..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(BIN)/.installed

# manage.py runs config.settings.local (DEBUG, the embedded default unless the
# environment names services); make serve and the WSGI/ASGI apps run production.
# The demo: seed the story quietly, start the server, and once it answers print the
# "Try it" block last. Every sign-in is kept in var/demo-sign-ins.txt.
demo: install
	@mkdir -p var
	@$(MANAGE) migrate --noinput -v 0
	@$(MANAGE) seed_demo --reset --story > var/demo-sign-ins.txt
	@trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null' INT TERM EXIT; \
	PYTHONUNBUFFERED=1 $(MANAGE) runserver --noreload 127.0.0.1:$(PORT) & server=$$!; \
	$(MANAGE) demo_try_it --sign-ins var/demo-sign-ins.txt --url http://127.0.0.1:$(PORT) || exit 1; \
	wait $$server

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(MANAGE) makemigrations --check --dry-run

serve: export DJANGO_SETTINGS_MODULE = config.settings.production
# Every process of the stack (uvicorn's workers, Celery's pool) counts its metrics into
# files here and /metrics adds them up (config/metrics.py); emptied at each start, so the
# counts are this run's and no dead process's files linger.
serve: export PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/prometheus
# The directory is made first: migrate and collectstatic load Django, whose import of
# config.metrics opens files in it (on a fresh checkout they failed for want of it).
serve: install
	rm -rf "$(PROMETHEUS_MULTIPROC_DIR)" && mkdir -p "$(PROMETHEUS_MULTIPROC_DIR)"
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput -v 0
	trap 'trap - INT TERM EXIT; kill 0' INT TERM EXIT; \
	$(BIN)/celery -A config worker -Q celery,email,intake,webhooks -l warning --concurrency 3 & \
	$(BIN)/celery -A config beat -l warning & \
	$(BIN)/python -m config.serve --workers $(WORKERS) --host 127.0.0.1 --port $(PORT) ; \
	wait

bench: install
	$(BIN)/python bench/run.py
