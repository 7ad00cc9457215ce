#!/usr/bin/env bash
# The whole test suite (what CI runs through .ci/run). Sets up first; the Rasa model is trained at most once.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/setup.sh --for-tests
export PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=2 LOG_LEVEL=WARNING LOG_LEVEL_LIBRARIES=ERROR
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "lint and types"
.venv-app/bin/ruff check .
# The pure code both environments import is checked as Python 3.10, the gateway (3.11) as 3.11 (pyproject.toml).
.venv-app/bin/mypy --python-version 3.10 bot/shared
.venv-app/bin/mypy --python-version 3.11 conversations channels

step "Rasa side (Python 3.10): Rasa plugins, held-out NLU evaluation, and the shared pure code"
.venv-rasa/bin/python -m pytest -q -p no:cacheprovider tests/bot/plugins tests/bot/shared -s

step "conversation tests (every flow, both languages)"
rm -rf var/results
.venv-rasa/bin/python -m rasa test core --model "models/$(cat models/CURRENT)" --stories tests/stories \
    --out var/results --fail-on-prediction-errors > var/logs/test-core.log 2>&1 \
  || { tail -40 var/logs/test-core.log; cat var/results/failed_test_stories.yml 2>/dev/null; exit 1; }
grep -h "Correct:" var/logs/test-core.log | tail -3 || true

step "services side (Python 3.11): shared code, actions, gateway, desk, KB, scripts, end-to-end stack, browser"
# Browser tests last: Playwright's sync API keeps an event loop running in the main thread for the rest of the
# session, which async tests collected after it could not use. One session, so one stack serves e2e and browser.
.venv-app/bin/python -m pytest -q -p no:cacheprovider --durations=30 tests/test_layering.py tests/bot/shared tests/nlu tests/actions tests/kb_index \
    tests/channels tests/handoff tests/analytics tests/workbench tests/scripts tests/tools tests/deploy tests/e2e tests/scale tests/browser

echo; echo "all tests passed in $(( $(date +%s) - start )) s"
