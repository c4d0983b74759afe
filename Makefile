# The two entry points of the README. Each sets up .venv from the repo's files first (cheap when current).
.PHONY: setup main test

setup:
	bash scripts/setup_env.sh

main: setup
	bash scripts/main.sh

test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest
