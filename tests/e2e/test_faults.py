"""Fault tests on the real stack under load: kill -9 Redis, a Rasa worker, the action server and the gateway in
turn, mid-conversation, while customers keep chatting; the supervisor restarts each part.

Load: CUSTOMERS concurrent customers on loopback, each running short scripted conversations through
``POST /api/webchat/messages`` like the web page: one message at a time, a client ``message_id`` per message, the
same id again after a network error, a timeout, a 5xx, 409 or 429, and (the customer retrying as the apology asks)
after a system apology. Then every customer message is looked up in its conversation's Redis stream.

Counted per fault: messages sent, stored, answered by the bot, apologised for (a system reply), not answered,
duplicated (stored twice); outage (kill -> part ready again) and recovery (part ready -> every customer's next
message answered by the bot). Targets (issue 12): 0 lost, 0 duplicated, every message answered or told to retry,
recovery within 10 s. The table is printed and written to ``<stack var dir>/fault-table.md``.

This module starts its own stack (it kills parts of it): about 4-6 minutes in all on the 2-core machine.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from tests.processes import port_free, start_stack

pytestmark = pytest.mark.e2e

CUSTOMERS = 4
THINK_S = 0.6  # a customer's pause between messages
RETRY_PAUSE_S = 1.0
APOLOGY_RETRY_PAUSE_S = 2.0
MESSAGE_DEADLINE_S = 150.0  # a customer gives up on one message after this long (a Rasa restart takes ~1 min)
LOAD_MAX_S = 600.0  # the load loop is bounded whatever happens
RECOVERY_TARGET_S = 10.0
# One known wait, bounded instead: a message whose turn was in flight on a killed gateway stays leased to it
# (channels/dispatch.py: RASA_TIMEOUT_S 20 s + LEASE_MARGIN_S 5 s, so a retry cannot answer it twice; the customer's
# retries get 409 until then); from the lease's end the usual target applies. Whether a turn was in flight at the
# kill is chance; every other customer recovers within RECOVERY_TARGET_S.
GATEWAY_LEASE_BOUND_S = 20.0 + 5.0 + RECOVERY_TARGET_S
FAULTS = ["redis", "rasa2", "actions", "web"]  # in this order, each mid-conversation
# Calm, varied conversations (no repeated text within one, so a message stored twice is visible).
SCRIPTS = [
    ["hello", "how long does delivery to xinjiang take?", "what is your return policy?", "thanks a lot"],
    ["你好", "退货政策是什么", "运费怎么算", "谢谢"],
    ["hi there", "how do I return an item?", "how long does a refund take?", "ok thank you"],
    ["您好", "新疆发货要多久", "怎么申请退款", "好的谢谢"],
]


@dataclass
class Sent:
    customer: int
    text: str
    message_id: str
    started: float
    conversation_id: str | None = None
    finished: float = 0.0
    attempts: int = 0
    outcome: str = "pending"  # answered | apologised | silent | failed:<why>
    first_outcome: str = ""  # what the first complete answer was (answered / apologised / silent)
    apologies: int = 0


@dataclass
class Load:
    base_url: str
    stop: threading.Event = field(default_factory=threading.Event)
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def customer(self, index: int) -> None:
        script = SCRIPTS[index % len(SCRIPTS)]
        with httpx.Client(base_url=self.base_url, timeout=30) as client:  # keeps the device cookie
            with_retry(lambda: client.get("/"), self.stop)
            while not self.stop.is_set():
                conversation_id: str | None = None
                for text in script:
                    if self.stop.is_set():
                        return
                    record = Sent(index, text, uuid.uuid4().hex, time.monotonic(), conversation_id)
                    with self.lock:
                        self.sent.append(record)
                    self.deliver(client, record)
                    conversation_id = record.conversation_id or conversation_id
                    time.sleep(THINK_S)

    def deliver(self, client: httpx.Client, record: Sent) -> None:
        """One message until it is answered, apologised for for good, or the customer gives up."""
        previous_apology: tuple[str, ...] = ()
        while time.monotonic() - record.started < MESSAGE_DEADLINE_S:
            record.attempts += 1
            body = {"conversation_id": record.conversation_id, "message_id": record.message_id, "text": record.text,
                    "metadata": {"ui_lang": "zh" if any("\u4e00" <= c <= "\u9fff" for c in record.text) else "en"}}
            try:
                response = client.post("/api/webchat/messages", json=body)
            except httpx.HTTPError:
                time.sleep(RETRY_PAUSE_S)
                continue
            if response.status_code >= 500 or response.status_code in (409, 429):
                time.sleep(RETRY_PAUSE_S)
                continue
            if response.status_code != 200:
                record.outcome, record.finished = f"failed:http {response.status_code}", time.monotonic()
                return
            data = response.json()
            record.conversation_id = data["conversation_id"]
            roles = {m["role"] for m in data["messages"]}
            if roles & {"bot", "agent"}:
                record.outcome = "answered"
            elif "system" in roles:
                record.outcome = "apologised"
                record.apologies += 1
            else:
                record.outcome = "silent"
            record.first_outcome = record.first_outcome or record.outcome
            record.finished = time.monotonic()
            if record.outcome != "apologised":
                return
            ids = tuple(m["id"] for m in data["messages"])
            if ids == previous_apology:  # the same stored apology replayed: final, a retry changes nothing
                return
            previous_apology = ids
            time.sleep(APOLOGY_RETRY_PAUSE_S)  # "please try again in a moment"
        record.outcome, record.finished = "failed:gave up", time.monotonic()


def with_retry(call, stop: threading.Event) -> None:  # noqa: ANN001
    while not stop.is_set():
        try:
            call()
            return
        except httpx.HTTPError:
            time.sleep(RETRY_PAUSE_S)


@dataclass
class Fault:
    part: str
    killed: float
    back: float = 0.0  # part ready again
    recovered: float = 0.0  # every customer's message sent after `back` answered by the bot


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory, relaxed_client_limits: dict) -> Iterator[object]:
    var_dir = tmp_path_factory.mktemp("fault-stack-var")
    running = start_stack(var_dir, rasa_workers=2, extra_env=relaxed_client_limits)
    running.seen_pids = set(running.pids())  # type: ignore[attr-defined]  (for the last test)
    yield running
    running.stop()


def _stored_customer_texts(client: redis.Redis, conversation_id: str) -> list[str]:
    entries = client.xrange(f"csbot:conv:{conversation_id}:messages")
    return [d[b"text"].decode() for _, d in entries if d.get(b"role") == b"customer"]


def _recovered_at(load: Load, back: float) -> float:
    """When every customer had a message, sent after the part was back, answered by the bot (0: not yet)."""
    firsts = []
    with load.lock:
        sent = list(load.sent)
    for customer in range(CUSTOMERS):
        answered = [s.finished for s in sent
                    if s.customer == customer and s.started >= back and s.outcome == "answered"]
        if not answered:
            return 0.0
        firsts.append(min(answered))
    return max(firsts)


def test_kill_9_each_part_under_load_loses_and_duplicates_nothing(fault_stack) -> None:  # noqa: ANN001
    stack = fault_stack
    load = Load(stack.web_url)
    threads = [threading.Thread(target=load.customer, args=(i,), daemon=True) for i in range(CUSTOMERS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    faults: list[Fault] = []
    try:
        time.sleep(10)  # every customer mid-conversation
        for part in FAULTS:
            fault = Fault(part, time.monotonic())
            stack.kill(part)
            stack.seen_pids |= stack.pids()
            fault.back = stack.wait_ready(part, timeout_s=300)
            deadline = fault.back + 90
            while time.monotonic() < deadline and not fault.recovered:
                fault.recovered = _recovered_at(load, fault.back)
                time.sleep(0.2)
            faults.append(fault)
            stack.seen_pids |= stack.pids()
            time.sleep(4)
            assert time.monotonic() - started < LOAD_MAX_S
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=MESSAGE_DEADLINE_S + 40)

    client = redis.Redis.from_url(stack.env()["REDIS_URL"])
    table, problems = _count(load, faults, client, started, bounds={"web": GATEWAY_LEASE_BOUND_S})
    out = Path(stack.var_dir) / "fault-table.md"
    out.write_text(table + "\n")
    (Path(stack.var_dir) / "fault-records.json").write_text(json.dumps(
        {"faults": [{**asdict(f), "killed": f.killed - started, "back": f.back - started,
                     "recovered": f.recovered - started if f.recovered else None} for f in faults],
         "sent": [{**asdict(r), "started": r.started - started, "finished": r.finished - started}
                  for r in load.sent]}, ensure_ascii=False, indent=1))
    print("\n" + table + f"\n(written to {out})")
    assert not problems, "\n".join(problems)


def _count(load: Load, faults: list[Fault], client: redis.Redis, started: float,
           bounds: dict[str, float] | None = None) -> tuple[str, list[str]]:
    """The table, and every miss of the targets. ``bounds``: a part's recovery target where a known lease or lock
    makes it longer than RECOVERY_TARGET_S."""
    stored: dict[str, list[str]] = {}
    for record in load.sent:
        if record.conversation_id and record.conversation_id not in stored:
            stored[record.conversation_id] = _stored_customer_texts(client, record.conversation_id)
    # Conversations no customer knows of (e.g. a first message retried after its reply was lost started another).
    known = set(stored)
    orphans = 0
    for key in client.scan_iter(match="csbot:conv:*:messages", count=500):
        conversation_id = key.decode().split(":")[2]
        if conversation_id not in known:
            orphans += len(_stored_customer_texts(client, conversation_id))

    windows = [(f.part, f.killed, (f.recovered or f.back + 90)) for f in faults]
    rows = []
    problems: list[str] = []

    def bucket(record: Sent) -> str:
        for part, begin, end in windows:
            if begin - 3 <= record.started <= end:  # in flight when the part died, or sent until recovery
                return part
        return "no fault"

    names = [f.part for f in faults] + ["no fault"]
    counts = {name: dict(sent=0, stored=0, lost=0, dup=0, answered=0, apologised=0, unanswered=0,
                         first_apologised=0) for name in names}
    for record in load.sent:
        c = counts[bucket(record)]
        c["sent"] += 1
        copies = stored.get(record.conversation_id or "", []).count(record.text)
        c["stored"] += 1 if copies else 0
        c["lost"] += 0 if copies else 1
        c["dup"] += max(0, copies - 1)
        if record.outcome == "answered":
            c["answered"] += 1
        elif record.outcome == "apologised":
            c["apologised"] += 1
        else:
            c["unanswered"] += 1
        if record.first_outcome == "apologised":
            c["first_apologised"] += 1
        if not copies or copies > 1 or record.outcome not in ("answered", "apologised"):
            problems.append(f"{bucket(record)}: customer {record.customer} {record.text!r}: stored {copies}x, "
                            f"outcome {record.outcome} after {record.attempts} attempt(s)")
    header = ("| fault (kill -9) | sent | stored | lost | duplicated | answered by bot | apologised (final) "
              "| first reply an apology | not answered | outage: kill -> ready | recovery after ready |")
    rows = [header, "|" + "---|" * 11]
    for fault in faults + [None]:
        name = fault.part if fault else "no fault"
        c = counts[name]
        if fault:
            outage = f"{fault.back - fault.killed:.1f} s"
            recovery = f"{fault.recovered - fault.back:.1f} s" if fault.recovered else "> 90 s"
            target = (bounds or {}).get(name, RECOVERY_TARGET_S)
            if not fault.recovered or fault.recovered - fault.back > target:
                problems.append(f"{name}: recovery {recovery} after the part was ready (target {target:.0f} s)")
        else:
            outage = recovery = "-"
        rows.append(f"| {name} | {c['sent']} | {c['stored']} | {c['lost']} | {c['dup']} | {c['answered']} | "
                    f"{c['apologised']} | {c['first_apologised']} | {c['unanswered']} | {outage} | {recovery} |")
    total = {k: sum(c[k] for c in counts.values()) for k in counts["no fault"]}
    rows.append(f"| **all** | {total['sent']} | {total['stored']} | {total['lost']} | {total['dup']} | "
                f"{total['answered']} | {total['apologised']} | {total['first_apologised']} | {total['unanswered']} "
                f"| | |")
    rows.append(f"\n{CUSTOMERS} customers, {time.monotonic() - started:.0f} s of load; customer messages stored in "
                f"conversations no customer knew of (a lost first reply that started a second conversation): "
                f"{orphans}")
    if orphans:
        problems.append(f"{orphans} customer message(s) stored again in a conversation the customer never saw")
    return "\n".join(rows), problems



def test_stop_after_the_faults_leaves_no_process_and_frees_every_port(fault_stack) -> None:  # noqa: ANN001
    stack = fault_stack
    seen: set[int] = set(stack.seen_pids) | stack.pids()
    ports = [stack.web_port, stack.action_port, stack.redis_port, *stack.rasa_ports]
    assert all(not port_free(p) for p in ports)  # all serving before the stop
    stack.stop()
    left = [p for p in seen if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, [psutil.Process(p).cmdline() for p in left]
    assert all(port_free(p) for p in ports)

