#!/bin/sh
# Entry point of the csbot images (deploy/Dockerfile): one process per container, started with exec so it gets the
# container's signals. Every setting comes from the environment (ConfigMap / Secret, see deploy/k8s/).
#   gateway  the web chat API, channels, agent desk, workbench, dashboard and background consumers (image: gateway)
#   actions  the action server (image: actions)
#   rasa     a Rasa worker with the model named by models/CURRENT (image: rasa)
#   migrate  apply the order database's migrations (image: gateway or actions; run as a Job before a rollout)
set -eu
service=${1:-}
[ $# -gt 0 ] && shift
case "$service" in
  gateway)
    # --no-proxy-headers: the client address is the socket's; X-Forwarded-For counts only from WEB_TRUSTED_PROXIES.
    exec python -m uvicorn channels.app:create_app --factory --host 0.0.0.0 --port 8000 \
      --no-access-log --no-proxy-headers "$@" ;;
  actions)
    exec python -m actions.server --host 0.0.0.0 --port "${ACTION_SERVER_PORT:-5055}" "$@" ;;
  rasa)
    : "${RASA_TOKEN:?RASA_TOKEN must be set (the gateway sends it to Rasa's HTTP API)}"
    exec python -m rasa run --model "models/$(cat models/CURRENT)" --enable-api --auth-token "$RASA_TOKEN" \
      --interface 0.0.0.0 --port 5005 --endpoints "${RASA_ENDPOINTS:-endpoints.yml}" \
      --credentials credentials.yml "$@" ;;
  migrate)
    exec python -m actions.orders.db upgrade "$@" ;;
  *)
    echo "usage: csbot-entrypoint gateway|actions|rasa|migrate [args]" >&2
    exit 64 ;;
esac
