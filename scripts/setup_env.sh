#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv, or $ASTERISK_VENV) from the repo's files.
# torch is installed first and pinned (constraints.txt) so nothing can pull a CUDA build of it.
# Re-running is cheap: the install is skipped while pyproject.toml and constraints.txt are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ASTERISK_VENV:-.venv}"
stamp="$venv/.asterisk-installed"
wanted="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check torch==2.13.0
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[train,eval,dev,crosscheck]"
  echo "$wanted" > "$stamp"
fi
