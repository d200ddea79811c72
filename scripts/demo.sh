#!/usr/bin/env bash
# The whole Freehold journey in a few minutes, offline, on a fictional shop's mailbox:
# the bundled model answers; a mail archive becomes training data; a LoRA fine-tune on the
# CPU; the signed ledger verifies; the tuned model answers a customer next to the base model.
#   bash scripts/demo.sh      (after bash scripts/setup.sh)
# Uses its own store in .freehold-demo/ (made afresh each run); explore it afterwards with
#   export FREEHOLD_HOME=$PWD/.freehold-demo; .venv/bin/freehold models
set -euo pipefail
cd "$(dirname "$0")/.."
export FREEHOLD_HOME="${FREEHOLD_DEMO_HOME:-$PWD/.freehold-demo}"
export FREEHOLD_NO_SERVER=1
rm -rf "$FREEHOLD_HOME"
fh() { echo "\$ freehold $*"; .venv/bin/freehold "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. The bundled model (SmolLM2-135M-Instruct) answers a question"
fh run smollm2 "What is the capital of France? Answer in one sentence." --temperature 0

step "2. A support mailbox becomes clean, threaded, PII-scrubbed training data"
fh data import examples/acme-support.mbox -o acme --ours acme-outdoor.example

step "3. LoRA fine-tune on the CPU (every step signed into the ledger; ~2 minutes on 2 cores)"
fh tune smollm2 --data acme -o acme-support --epochs 4 --lr 1e-3 --eval-every 0 --save-every 12

step "4. Anyone can verify what went into it"
fh audit verify acme-support
fh lineage acme-support

step "5. A customer writes in: the base model vs the tuned one"
Q="Hi, the zip on my Summit 45L backpack broke after one trip. Is that covered?"
echo "customer: $Q"
echo; echo "-- base model (smollm2):"
.venv/bin/freehold run smollm2 "$Q" --temperature 0 --max-tokens 100
echo; echo "-- tuned model (acme-support):"
.venv/bin/freehold run acme-support "$Q" --temperature 0 --max-tokens 100
printf '\nDone. Explore: export FREEHOLD_HOME=%s; .venv/bin/freehold models\n' "$FREEHOLD_HOME"
