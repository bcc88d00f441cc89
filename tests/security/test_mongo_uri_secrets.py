"""A MongoDB URI's secrets stay out of what the job and the operator tools print, and off their command lines.

- The job's start-up check (`check_mongo`) names the database it could not use without any part of a password: the
  URI is parsed as a URI (the user information ends at the authority's last `@`, so a password holding an unescaped
  `@` leaks nothing after its first one), and options that carry secrets (`...password=`, tokens) are hidden too.
- `--mongo-uri` with a password is accepted, but the job and `ops.verify` warn that every user can read it (`ps`,
  and Spark's Environment tab for the job) and name the environment variable to use instead.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest

from conf import ConfigError
from interactions.preflight import check_mongo
from ops.verify import cli as verify_cli
from stack import free_port

ROOT = Path(__file__).resolve().parents[2]


# (URI with {port}, the pieces of secrets that must not be shown)
URIS = {
    "unescaped-at": ("mongodb://pipeline:p@ss-dor-77@127.0.0.1:{port}/?retryWrites=false",
                     ["p@ss-dor-77", "ss-dor-77", "dor-77"]),
    "escaped-at": ("mongodb://pipeline:p%40ss-dor-77@127.0.0.1:{port}/?retryWrites=false",
                   ["p%40ss-dor-77", "p@ss-dor-77", "ss-dor-77", "dor-77"]),
    "unescaped-slash": ("mongodb://pipeline:pa/ss-dor-77@127.0.0.1:{port}/", ["pa/ss-dor-77", "ss-dor-77", "dor-77"]),
    "unescaped-question-mark": ("mongodb://pipeline:pa?ss-dor-77@127.0.0.1:{port}/",
                                ["pa?ss-dor-77", "ss-dor-77", "dor-77"]),
    "password-option": ("mongodb://127.0.0.1:{port}/?retryWrites=false&password=pw-dor-77", ["pw-dor-77"]),
    "token-option": ("mongodb://127.0.0.1:{port}/?authMechanism=MONGODB-AWS"
                     "&authMechanismProperties=AWS_SESSION_TOKEN:tok-dor-77", ["tok-dor-77"]),
}


@pytest.mark.parametrize("name", sorted(URIS))
def test_the_start_up_check_shows_no_part_of_a_secret(name):
    port = free_port()  # nothing listens there: the check fails, and says where it tried
    uri, secrets = URIS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymongo's "Unknown option password"
        with pytest.raises(ConfigError) as failure:
            check_mongo(uri.format(port=port), "analytics", timeout=0.5)
    message = str(failure.value)
    assert message.startswith("MongoDB") and "\n" not in message, message
    leaks = [piece for piece in secrets if piece in message]
    assert not leaks, f"{leaks} in: {message}"
    assert f"127.0.0.1:{port}" in message, f"the message no longer says which server: {message}"


def load_aggregate():
    spec = importlib.util.spec_from_file_location("aggregate_for_secrets", ROOT / "jobs" / "aggregate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Each run ends at the configuration (a file that does not exist), before any service is asked: the warning comes
# first, from the flags alone.
TOOLS = {"aggregate": lambda argv: load_aggregate().main(argv), "verify": verify_cli.main}
WITH_PASSWORD = "mongodb://pipeline:hunter2-dor-77@db.example:27017/?authSource=admin"


@pytest.mark.parametrize("tool", sorted(TOOLS))
@pytest.mark.parametrize("uri", [WITH_PASSWORD, "mongodb://db.example/?tlsCertificateKeyFilePassword=hunter2-dor-77"],
                         ids=["user-information", "option"])
def test_a_password_on_the_command_line_is_warned_about(tool, uri, capsys):
    assert TOOLS[tool](["--mongo-uri", uri, "--config", "/nonexistent/pipeline.toml"]) == 2
    err = capsys.readouterr().err
    assert "warning: --mongo-uri carries a password" in err and "PIPELINE_MONGO_URI" in err, err
    assert "hunter2" not in err


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_uri_without_a_secret_is_not_warned_about(tool, capsys):
    TOOLS[tool](["--mongo-uri", "mongodb://x509-user@db.example:27017/?authMechanism=MONGODB-X509",
                 "--config", "/nonexistent/pipeline.toml"])
    assert "warning" not in capsys.readouterr().err
