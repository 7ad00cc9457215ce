#!/usr/bin/env bash
# Idempotent setup: environments (keyed by lock-file hash), system packages for tests, model, KB index, Rasa model.
# A second run with nothing changed takes seconds.  Usage: scripts/setup.sh [--for-tests]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FOR_TESTS=0; [ "${1:-}" = "--for-tests" ] && FOR_TESTS=1
PY310=${CSBOT_PYTHON310:-/root/.pyenv/versions/3.10.13/bin/python}
PY311=${CSBOT_PYTHON311:-$(command -v python3.11 || command -v python3)}
VENV_ROOT=${CSBOT_VENV_ROOT:-$HOME/.cache/csbot/venvs}
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# Run pip with its noisy "WARNING: Location" lines filtered out; everything else it prints is shown and its exit
# status is kept (a grep that filtered every line must not count as a failure, a failed pip must).
pip_run() {
  local status=0
  "$@" 2>&1 | { grep -v "^WARNING: Location" || true; } || status=$?
  return "$status"
}

ensure_venv() {  # name python lockfile link
  local name=$1 py=$2 lock=$3 link=$4
  local dir="$VENV_ROOT/$name-$(hash_of "$lock")"
  if [ ! -f "$dir/.complete" ]; then
    log "creating $name environment in $dir (first time for this lock file)"
    rm -rf "$dir"; mkdir -p "$VENV_ROOT"
    "$py" -m venv "$dir"
    pip_run "$dir/bin/pip" install -q --upgrade pip \
      || { log "FAILED: upgrading pip in $dir (pip's output above); environment left incomplete" >&2; exit 1; }
    pip_run "$dir/bin/pip" install -q --no-deps -r "$lock" \
      || { log "FAILED: pip install -r $lock into $dir (pip's output above); environment left incomplete" >&2
           exit 1; }
    # Informational (the lock is installed --no-deps): conflicts are shown, not fatal.
    "$dir/bin/pip" check >/dev/null 2>&1 || "$dir/bin/pip" check | grep -v "^WARNING" | head -5 || true
    "$dir/bin/python" -c "import sys; print(sys.version)" >/dev/null
    touch "$dir/.complete"  # only now: a half-built environment is rebuilt by the next run
  fi
  ln -sfn "$dir" "$link"
}

ensure_venv rasa "$PY310" requirements/rasa.lock .venv-rasa
ensure_venv app "$PY311" requirements/app.lock .venv-app
mkdir -p var/logs models

# Dashboard charts: Chart.js from the npm registry (npm pack), pinned by the sha256 of its published tarball, unpacked
# into the git-ignored analytics/static/dashboard/vendor/ that the gateway serves (no CDN at run time). Fetched once;
# a missing npm, a failed download or a different tarball stops the setup.
CHARTJS_VERSION=4.5.0
CHARTJS_SHA256=e383a54911233cd8d5f9365a7407cb4b936507316d7e2977ebb126f266d6b47d
CHARTJS_DIR=analytics/static/dashboard/vendor
if [ "$(cat "$CHARTJS_DIR/VERSION" 2>/dev/null)" != "chart.js $CHARTJS_VERSION $CHARTJS_SHA256" ] \
   || [ ! -s "$CHARTJS_DIR/chart.umd.min.js" ]; then
  command -v npm >/dev/null || { log "FAILED: npm is needed (once) to fetch Chart.js for the dashboard" >&2; exit 1; }
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "chart.js@$CHARTJS_VERSION" >/dev/null) \
    || { log "FAILED: npm pack chart.js@$CHARTJS_VERSION (registry unreachable?)" >&2; rm -rf "$tmp"; exit 1; }
  echo "$CHARTJS_SHA256  $tmp/chart.js-$CHARTJS_VERSION.tgz" | sha256sum -c --status - \
    || { log "FAILED: chart.js-$CHARTJS_VERSION.tgz does not have the pinned sha256" >&2; rm -rf "$tmp"; exit 1; }
  tar -xzf "$tmp/chart.js-$CHARTJS_VERSION.tgz" -C "$tmp" package/dist/chart.umd.min.js package/LICENSE.md
  mkdir -p "$CHARTJS_DIR"
  cp "$tmp/package/dist/chart.umd.min.js" "$tmp/package/LICENSE.md" "$CHARTJS_DIR/"
  echo "chart.js $CHARTJS_VERSION $CHARTJS_SHA256" > "$CHARTJS_DIR/VERSION"
  rm -rf "$tmp"
  log "Chart.js $CHARTJS_VERSION for the dashboard in $CHARTJS_DIR"
fi

if [ "$FOR_TESTS" = 1 ] && { [ ! -x /usr/bin/chromium ] || ! dpkg -s fonts-wqy-microhei postgresql haproxy >/dev/null 2>&1; }; then
  log "installing Debian chromium + CJK font (browser tests), postgresql (data-layer tests), haproxy (topology test)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei postgresql haproxy >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei postgresql haproxy >/dev/null; fi
fi

# Order database (DATABASE_URL, default var/store.db): apply migrations, load the demo store when it is empty.
.venv-app/bin/python -m actions.orders.db upgrade >/dev/null
demo=$(.venv-app/bin/python -m tools.demo_data)
log "order database: ${demo%%$'\n'*}"
.venv-app/bin/python -m tools.demo_data --examples  # real orders of this database, for the README's walk-through

# Knowledge base: the offline multilingual embedding model (built from packaged weights once) and the FAISS index
# (rebuilt only when articles or model changed).
PYTHONPATH=$ROOT .venv-app/bin/python -m kb_index provision-model > var/logs/kb.log 2>&1 || { tail -20 var/logs/kb.log; exit 1; }
PYTHONPATH=$ROOT .venv-app/bin/python -m kb_index build >> var/logs/kb.log 2>&1 || { tail -20 var/logs/kb.log; exit 1; }
PYTHONPATH=$ROOT .venv-app/bin/python -m actions.routing --train >> var/logs/kb.log 2>&1 || { tail -20 var/logs/kb.log; exit 1; }
log "knowledge base index and question reader ready"

# Rasa model: retrain only when training data, config, custom components or the escalation/frustration data they
# persist into the model changed (the knowledge base's example questions are background of the topic classifier).
FP=$(hash_of config.yml domain.yml requirements/rasa.lock data/escalation.yml $(find data/nlu data/jieba data/spacy data/dialogue data/frustration data/kb bot -type f \( -name '*.yml' -o -name '*.py' -o -name '*.txt' \) | sort))
MODEL="models/csbot-$FP.tar.gz"
if [ ! -f "$MODEL" ]; then
  log "training the Rasa model (data or config changed) ..."
  start=$(date +%s)
  PYTHONPATH=$ROOT TF_CPP_MIN_LOG_LEVEL=2 .venv-rasa/bin/python -m rasa train --fixed-model-name "csbot-$FP" \
      --out models --config config.yml --domain domain.yml --data data/nlu data/dialogue \
      > var/logs/train.log 2>&1 || { tail -30 var/logs/train.log; exit 1; }
  log "trained $MODEL in $(( $(date +%s) - start )) s"
  find models -name 'csbot-*.tar.gz' ! -name "csbot-$FP.tar.gz" -delete
fi
# Written only when it changes: its time tells the stack whether setup trained after the workbench's last deploy
# (workbench/releases.py ensure_live_link).
[ "$(cat models/CURRENT 2>/dev/null)" = "csbot-$FP.tar.gz" ] || echo "csbot-$FP.tar.gz" > models/CURRENT
log "ready (model $MODEL)"
