"""Alerting inside the streaming job: rules (conf/alerts.toml), their evaluation on each micro-batch's fresh
figures, the `alerts` collection, and the channels that notify (log line, webhook, email).

    rules.py       the rules file -> typed, validated Rule objects
    evaluation.py  pure: figures in, alert transitions (firing / ongoing / resolved) out; windows and cooldown
    store.py       the `alerts` collection, idempotent under replayed micro-batches
    channels.py    log, webhook, SMTP; bounded queues, background threads, retry with backoff
    monitor.py     the job-facing object that wires the four together (driver side)
"""
from interactions.alerting.rules import METRICS, Rule, RuleSet, load_rules

__all__ = ["METRICS", "Rule", "RuleSet", "load_rules"]
