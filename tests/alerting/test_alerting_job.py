"""Alerting inside the running job: the generator pushes traffic over a threshold, the job (in-process, available
now) evaluates its rules on the micro-batches and a local webhook receiver and SMTP server get the alerts, with the
cooldown holding back a second notification and the resolve sent once. Rerunning the job over the same topic from a
fresh checkpoint (every batch replayed) notifies nobody again.

Event times are pinned (generator --start-time) to whole minutes half an hour ago, so the job's clock has passed
every minute and the test does not wait for time to pass; the job's lateness allowance is raised to match.
"""
from __future__ import annotations

import collections
import datetime as dt
import json
import shutil
import subprocess
import sys

import pytest

from conf import load_config
from contract.times import floor, parse_instant
from interactions.pipeline import RunMode, start_queries
from ops.verify import read_topic

from processes import Processes
from waiting import wait_until

pytestmark = pytest.mark.integration
QUIET, BURST = 100, 600           # events per minute
MINUTES = [QUIET, BURST, QUIET, BURST, QUIET, QUIET, QUIET, QUIET]  # the burst repeats inside the cooldown
RULES = """
[[rule]]
name = "spike"
metric = "events_per_minute"
comparison = ">"
threshold = 300
window = "1 minute"
cooldown = "3 minutes"

[[rule]]
name = "bot"
metric = "max_user_events_per_minute"
comparison = ">"
threshold = 100
window = "1 minute"
cooldown = "10 minutes"
"""


def produce_minutes(processes: Processes, bootstrap_servers: str, topic: str, start: dt.datetime) -> None:
    """One generator run per minute of event time, all at once: minute i gets MINUTES[i] events, from 10 s in."""
    runs = [processes.start(
        [sys.executable, "-m", "generator", "--bootstrap-servers", bootstrap_servers, "--topic", topic,
         "--start-time", (start + dt.timedelta(minutes=i, seconds=10)).isoformat(), "--jitter", "0",
         "--rate", "2000", "--count", str(count),
         "--seed", str(100 + i), "--users", "20", "--items", "30", "--progress-interval", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i, count in enumerate(MINUTES)]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err.decode()[-2000:]


def per_minute(records) -> tuple[collections.Counter, dict[dt.datetime, tuple[str, int]]]:
    """Independent figures from the topic: events per minute, and each minute's busiest user."""
    events: collections.Counter = collections.Counter()
    users: collections.Counter = collections.Counter()
    for record in records:
        event = json.loads(record.raw)
        when = floor(parse_instant(event["event_time"]), dt.timedelta(minutes=1))
        events[when] += 1
        users[when, event["user_id"]] += 1
    busiest: dict[dt.datetime, tuple[str, int]] = {}
    for (when, user), n in users.items():
        if n > busiest.get(when, ("", 0))[1] or (n == busiest[when][1] and user > busiest[when][0]):
            busiest[when] = (user, n)
    return events, busiest


def run_job(spark_session, config) -> None:
    pipeline = start_queries(spark_session, config, RunMode(available_now=True))
    try:
        pipeline.await_termination()  # then delivers the queued notifications
    finally:
        pipeline.stop()


def test_a_burst_fires_once_within_the_cooldown_resolves_once_and_a_replay_notifies_nobody(
        spark_session, kafka_broker, kafka_topic, mongo_server, mongo_db, tmp_path, webhook_receiver,
        smtp_receiver, processes):
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)).replace(second=0, microsecond=0)
    minute = [start + dt.timedelta(minutes=i) for i in range(len(MINUTES))]
    produce_minutes(processes, kafka_broker.bootstrap_servers, kafka_topic, start)
    events, busiest = per_minute(read_topic(kafka_broker.bootstrap_servers, kafka_topic))
    assert [events[m] for m in minute] == MINUTES
    bot_minutes = [i for i, m in enumerate(minute) if busiest[m][1] > 100]
    assert bot_minutes == [1, 3], f"the scenario needs one busy user in the burst minutes only: {busiest}"

    rules = tmp_path / "alerts.toml"
    rules.write_text(RULES)
    config = load_config(env={}, overrides={
        "kafka": {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": kafka_topic},
        "mongo": {"uri": mongo_server.uri, "database": mongo_db.name},
        "job": {"checkpoint_dir": str(tmp_path / "checkpoint"), "shuffle_partitions": 2,
                "watermark_delay": "1 hour"},
        "alerts": {"rules_file": str(rules), "webhook_url": webhook_receiver.url, "smtp_host": "127.0.0.1",
                   "smtp_port": smtp_receiver.port, "smtp_recipients": "ops@test", "retry_backoff": "100 ms"},
        "health": {"prometheus_port": 0},
    })
    run_job(spark_session, config)

    def notified() -> list[tuple[str, str]]:
        return sorted((m["state"], m["rule"]) for m in webhook_receiver.messages())

    expected = [("firing", "bot"), ("firing", "spike"), ("resolved", "spike")]
    wait_until(lambda: notified() == expected and len(smtp_receiver.messages()) == 3, 30,
               f"webhook and mail: {expected}")
    subjects = sorted(mail["Subject"] for mail in smtp_receiver.messages())
    assert subjects[0].startswith(f"[FIRING] bot: max_user_events_per_minute {busiest[minute[1]][1]} "
                                  f"({busiest[minute[1]][0]}) > 100")
    assert subjects[1].startswith(f"[FIRING] spike: events_per_minute {BURST} > 300")
    assert subjects[2].startswith("[RESOLVED] spike: events_per_minute 100 > 300")

    spike = mongo_db.alerts.find_one({"rule": "spike"})
    assert (spike["state"], spike["value"], spike["first_seen"], spike["last_seen"], spike["resolved_window"]) == (
        "resolved", BURST, minute[1].replace(tzinfo=None), minute[3].replace(tzinfo=None),
        minute[6].replace(tzinfo=None))  # clear for the 3-minute cooldown after the second burst
    for kind in ("firing", "resolved"):
        assert {c: spike["notifications"][kind][c]["status"] for c in ("log", "webhook", "email")} == {
            "log": "sent", "webhook": "sent", "email": "sent"}
    bot = mongo_db.alerts.find_one({"rule": "bot"})
    assert (bot["state"], bot["subject"], bot["value"]) == ("firing", *busiest[minute[3]])

    shutil.rmtree(tmp_path / "checkpoint")  # every batch again, same data: a replay of the whole run
    run_job(spark_session, config)
    assert notified() == expected and len(smtp_receiver.messages()) == 3
    assert mongo_db.alerts.count_documents({}) == 2
