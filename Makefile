# The two commands of the README:  `make run` (set up + run everything)  and  `make test` (whole test suite).
.PHONY: setup run test bench bench-channels kb lint lock supervisor

setup:            ## environments, models, indexes, database (idempotent; seconds when nothing changed)
	scripts/setup.sh

run: setup        ## start Redis, Rasa, action server, web chat; crashed services restart; Ctrl-C stops everything
                  ## FAKE_PHONES=1 make run: also fake Telegram/WhatsApp/WeChat phone pages (local demo, docs/CHANNELS.md)
	.venv-app/bin/python scripts/stack.py

test:             ## the whole suite, as CI runs it
	scripts/test.sh

bench: setup      ## throughput/latency of this bot vs a plain `rasa init` bot, through the same kind of API
	.venv-app/bin/python tools/bench_vs_rasa.py

bench-channels: setup  ## inbound-to-reply p50/p95 per messaging channel on the real stack (platform fakes in process)
	.venv-app/bin/python tools/bench_channels.py

supervisor:       ## first agent-desk account on the project's Redis (password from var/redis): make supervisor USERNAME=boss
	@test -n "$(USERNAME)" || { echo "usage: make supervisor USERNAME=<name>" >&2; exit 2; }
	@REDIS_URL="$${REDIS_URL:-redis://:$$(cat var/redis/password)@127.0.0.1:6379/0}" \
	  .venv-app/bin/python -m handoff.admin create-supervisor --username "$(USERNAME)"

lint:
	.venv-app/bin/ruff check .

lock:             ## refresh requirements/*.lock from the current environments after editing requirements/*.in
	.venv-rasa/bin/pip freeze --all | grep -v '^-e\|^pip==' > requirements/rasa.lock
	.venv-app/bin/pip freeze --all | grep -v '^-e\|^pip==' > requirements/app.lock
