# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: setup run test test-fast bench

export PATH := $(CURDIR)/.venv/bin:$(PATH)
export FLASK_APP := wsgi.py

setup:
	@bash scripts/setup.sh

run: setup
	honcho -f Procfile.dev start

test: setup
	@bash scripts/test.sh

test-fast: setup
	@KILN_TEST_SLOW=0 bash scripts/test.sh

bench: setup
	python bench/planner.py
	python bench/run.py
	python bench/boot.py --runs 5
	python bench/web.py
