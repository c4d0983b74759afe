# The two entry points of the README. Each sets up .venv from the repo's files first (cheap when current).
.PHONY: setup main test

setup:
	bash scripts/setup_env.sh

main: setup
	.venv/bin/python scripts/demo.py

test: setup
	.venv/bin/python -m pytest
