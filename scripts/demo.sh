#!/usr/bin/env bash
# The whole Freehold journey in a few minutes, offline, on a fictional shop's mailbox:
# the bundled model answers; a mail archive becomes training data; the mail and the shop's
# policy page become a knowledge index; a LoRA fine-tune on the CPU that learns to answer
# from it; the signed ledger verifies; the tuned model answers a customer, citing its
# sources, next to the base model; it drafts the reply to a new mail.
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

step "3. The answered mail and the shop's policy page become knowledge to answer from"
fh knowledge build acme-kb --data acme --docs examples/acme-policies.md

step "4. LoRA fine-tune on the CPU, reading the sources in every example (each step signed; ~3 minutes on 2 cores)"
fh tune smollm2 --data acme --knowledge acme-kb -o acme-support --epochs 3 --lr 5e-4 --eval-every 0 --save-every 25

step "5. Anyone can verify what went into it"
fh audit verify acme-support
fh lineage acme-support

step "6. A customer writes in: the base model vs the tuned one (which answers from acme-kb and cites it)"
Q="Hi, the zip on my Summit 45L backpack broke after one trip. Is that covered?"
echo "customer: $Q"
echo; echo "-- base model (smollm2):"
.venv/bin/freehold run smollm2 "$Q" --temperature 0 --max-tokens 100
echo; echo "-- tuned model (acme-support):"
.venv/bin/freehold run acme-support "$Q" --temperature 0 --max-tokens 100

step "7. A new mail arrives (examples/customer-question.eml): the tuned model drafts the reply"
fh reply acme-support --mail examples/customer-question.eml --temperature 0
printf '\nDone. Explore: export FREEHOLD_HOME=%s; .venv/bin/freehold models\n' "$FREEHOLD_HOME"
