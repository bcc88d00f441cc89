"""The rules file: parsed into typed Rule objects; every mistake is one readable line naming the file and rule."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from conf import ConfigError, load_config
from interactions.alerting import load_rules

ROOT = Path(__file__).resolve().parents[2]
GOOD = '''
[[rule]]
name = "spike"
metric = "events_per_minute"
comparison = ">"
threshold = 1000
window = "5 minutes"
cooldown = "10 minutes"

[[rule]]
name = "broken"
metric = "dead_letter_ratio"
comparison = "above"
threshold = "2.5%"
window = "1 minute"
cooldown = "0 seconds"
'''


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    return path


def rule(**changes: object) -> str:
    """A [[rule]] table: a valid one, with some keys changed (TOML text) or left out (None)."""
    fields: dict[str, object] = {"name": '"r"', "metric": '"events_per_minute"', "comparison": '">"',
                                 "threshold": "10", "window": '"1 minute"', "cooldown": '"1 minute"'}
    fields.update(changes)
    return "[[rule]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)


def test_a_rules_file_becomes_typed_rules(tmp_path):
    rules = load_rules(write(tmp_path, GOOD))
    spike, broken = rules.rules
    assert (spike.name, spike.metric, spike.comparison, spike.threshold) == ("spike", "events_per_minute", ">", 1000)
    assert spike.window == dt.timedelta(minutes=5) and spike.cooldown == dt.timedelta(minutes=10)
    assert spike.fires_early and not broken.fires_early  # a count can prove a breach early, a ratio cannot
    assert broken.comparison == ">" and broken.threshold == pytest.approx(0.025)
    assert rules.user_rate_window is None  # no rule needs the per-user query


def test_the_default_rules_file_and_config_load():
    config = load_config(env={})
    rules = load_rules(ROOT / config.alerts.rules_file)
    assert {r.metric for r in rules.rules} >= {"events_per_minute", "purchases_per_minute", "dead_letter_ratio",
                                               "max_user_events_per_minute"}
    assert rules.user_rate_window == dt.timedelta(minutes=1)


@pytest.mark.parametrize("text, message", [
    (rule(metric='"clicks"'), "rule 'r': unknown metric 'clicks' (known: events_per_minute, "),
    (rule(comparison='"=="'), "rule 'r': comparison must be one of >, >=, <, <=, above, below; got '=='"),
    (rule(threshold='"many"'), "rule 'r': threshold must be a number, got 'many'"),
    (rule(metric='"dead_letter_ratio"', threshold="5"), "rule 'r': a dead_letter_ratio threshold is a fraction"),
    (rule(window='"90 seconds"'), "rule 'r': window must be a whole number of minutes, got '90 seconds'"),
    (rule(window='"soon"'), "rule 'r': window must look like '2 minutes' or '500 ms', got 'soon'"),
    (rule(cooldown="5"), "rule 'r': cooldown must be a duration like '5 minutes', got 5"),
    (rule(threshold=None), "rule #1: missing key 'threshold'"),
    (rule(severity='"high"'), "rule #1: unknown key 'severity'"),
    (rule() + rule(), "rule name 'r' is used twice"),
    (rule(name='"a"', metric='"max_user_events_per_minute"') +
     rule(name='"b"', metric='"max_user_events_per_minute"', window='"2 minutes"'),
     "every max_user_events_per_minute rule must use the same window (found 1 minute, 2 minutes)"),
    ("[rules]\nx = 1\n", "unknown top-level key 'rules'"),
    ("[[rule]\n", "is not valid TOML"),
])
def test_a_bad_rule_is_one_readable_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_rules(path)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).startswith(f"{path}: ") or "not valid TOML" in str(error.value)


def test_a_missing_rules_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"alert rules file .*nope.toml not found$"):
        load_rules(tmp_path / "nope.toml")


def test_alert_settings_are_validated_like_the_rest_of_the_config():
    with pytest.raises(ConfigError, match="^alerts.webhook_url must start with http:// or https://"):
        load_config(env={"PIPELINE_ALERTS_WEBHOOK_URL": "ftp://x"})
    with pytest.raises(ConfigError, match="^alerts.smtp_recipients must name at least one address"):
        load_config(env={"PIPELINE_ALERTS_SMTP_HOST": "mail.example"})
    with pytest.raises(ConfigError, match=r"^health.prometheus_port must be a TCP port \(0 = off\)"):
        load_config(env={"PIPELINE_HEALTH_PROMETHEUS_PORT": "-1"})
    assert "secret" not in repr(load_config(env={"PIPELINE_ALERTS_SMTP_PASSWORD": "secret"}))
