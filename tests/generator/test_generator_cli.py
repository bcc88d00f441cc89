"""The command line without a broker: bad input is one line and exit 2; an unreachable broker one line and exit 1."""
from __future__ import annotations

import sys

import pytest

from generator.cli import parse_args
from stack import free_port

from processes import run


@pytest.mark.parametrize("argv", [
    ["--rate", "abc"],
    ["--rate", "0"],
    ["--rate", "max"],                                   # unbounded without --count/--duration
    ["--count", "-1"],
    ["--duration", "0"],
    ["--processes", "0"],
    ["--users", "2", "--processes", "3"],
    ["--late-ratio", "1.5"],
    ["--late-ratio", "0.5", "--duplicate-ratio", "0.3", "--malformed-ratio", "0.3"],
    ["--cart-rate", "-0.1"],
    ["--zipf", "nan"],
    ["--jitter", "30"],
    ["--burst", "10"],
    ["--start-time", "yesterday"],
    ["--start-time", "2026-11-28T00:00:00Z", "--rate", "max", "--count", "10"],
    ["--compression", "brotli"],
    ["--producer-config", "linger.ms"],
    ["--partitions", "0"],
    ["--emit-manifest", "/no/such/folder/manifest.jsonl"],
    ["--no-such-flag"],
])
def test_bad_flags_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m generator: error: "), err


def test_bad_environment_value_exits_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_GENERATOR_RATE", "fast")
    with pytest.raises(SystemExit) as exit_info:
        parse_args([])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "generator.rate" in err


def test_flags_override_the_configuration(monkeypatch):
    monkeypatch.setenv("PIPELINE_KAFKA_TOPIC", "from-env")
    plan = parse_args(["--rate", "500", "--seed", "7", "--users", "50", "--count", "10", "--processes", "2",
                       "--late-ratio", "0.1", "--burst", "3x:5@2"])
    assert plan.kafka.topic == "from-env"
    assert (plan.settings.rate, plan.settings.seed, plan.settings.users, plan.settings.late_ratio) == \
        (500, 7, 50, 0.1)
    assert plan.settings.bursts[0].factor == 3
    assert [plan.producer_plan(i).length.count for i in range(2)] == [5, 5]


def test_seed_zero_is_replaced_by_a_printed_random_seed():
    assert parse_args(["--seed", "0"]).settings.seed != 0


def test_command_rejects_bad_flag_without_traceback():
    result = run([sys.executable, "-m", "generator", "--duplicate-ratio", "2"],
                 capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--duplicate-ratio" in result.stderr, result.stderr


def test_unreachable_broker_is_one_line_and_exit_1():
    result = run(
        [sys.executable, "-m", "generator", "--bootstrap-servers", f"127.0.0.1:{free_port()}",
         "--connect-timeout", "2", "--count", "10"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot reach Kafka" in result.stderr, result.stderr
