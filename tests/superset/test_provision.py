"""The provisioning's pure parts: the connection URI it gives Superset, the secrets it keeps, the bundle it imports.
Fast and service-free; the superset-marked tests run the whole command."""
from __future__ import annotations

import importlib.util
import stat
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

SUPERSET_DIR = Path(__file__).resolve().parents[2] / "superset"


def load(name: str, path: Path):
    loader = SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


provision = load("superset_provision", SUPERSET_DIR / "provision")
import_bundle = load("superset_import_bundle", SUPERSET_DIR / "import_bundle.py")


def test_superset_uri_names_the_database_and_superset_mode():
    assert (provision.sqlalchemy_uri("mongodb://127.0.0.1:27017/?retryWrites=false", "analytics")
            == "mongodb://127.0.0.1:27017/analytics?retryWrites=false&serverSelectionTimeoutMS=5000&mode=superset")


def test_superset_uri_keeps_credentials_and_the_users_own_options():
    uri = provision.sqlalchemy_uri("mongodb://u:p%40ss@db1:27017,db2:27017/other?serverSelectionTimeoutMS=900"
                                   "&mode=standard&authSource=admin", "analytics")
    assert uri == ("mongodb://u:p%40ss@db1:27017,db2:27017/analytics?serverSelectionTimeoutMS=900&authSource=admin"
                   "&mode=superset")


def test_secrets_are_generated_once_into_a_private_file_then_kept(tmp_path, monkeypatch):
    for name in provision.SECRET_NAMES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / ".secrets.env"
    first = provision.resolve_secrets(path)
    assert set(first) == set(provision.SECRET_NAMES) and all(len(value) >= 16 for value in first.values())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert provision.resolve_secrets(path) == first


def test_secrets_from_the_environment_win_and_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERSET_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("SUPERSET_ADMIN_PASSWORD", "from-env")
    path = tmp_path / ".secrets.env"
    assert provision.resolve_secrets(path) == {"SUPERSET_SECRET_KEY": "k" * 40, "SUPERSET_ADMIN_PASSWORD": "from-env"}
    assert not path.exists()


def test_the_bundle_commits_no_connection_uri_and_the_import_fills_it_in():
    committed = (SUPERSET_DIR / "bundle" / "databases" / "analytics.yaml").read_text()
    assert f"sqlalchemy_uri: {import_bundle.URI_PLACEHOLDER}" in committed
    contents = import_bundle.bundle_contents(SUPERSET_DIR / "bundle", "mongodb://h:1/db?mode=superset")
    assert "metadata.yaml" in contents and "dashboards/user_interactions.yaml" in contents
    assert "sqlalchemy_uri: mongodb://h:1/db?mode=superset" in contents["databases/analytics.yaml"]
    assert not any(import_bundle.URI_PLACEHOLDER in text for text in contents.values())


@pytest.mark.parametrize("chart", sorted(p.name for p in (SUPERSET_DIR / "bundle" / "charts").glob("*.yaml")))
def test_every_chart_file_carries_a_query_context(chart):
    """The REST API (and the data test) run a chart's saved query_context; without one they answer 400."""
    text = (SUPERSET_DIR / "bundle" / "charts" / chart).read_text()
    assert "\nquery_context: |\n" in text and '"queries": [{' in text


def test_gunicorn_runs_two_worker_processes_by_default_and_as_many_as_asked(tmp_path):
    """A dashboard asks for all its charts at once; one Python process answers one request at a time."""
    def flag(command: list[str], name: str) -> str:
        return command[command.index(name) + 1]

    default = provision.SupersetServer(tmp_path, "127.0.0.1", 1, secrets_file=tmp_path / "s.env").command()
    assert (flag(default, "--workers"), flag(default, "--threads")) == ("2", "4")
    asked = provision.SupersetServer(tmp_path, "127.0.0.1", 1, secrets_file=tmp_path / "s.env", threads=8,
                                     workers=3).command()
    assert (flag(asked, "--workers"), flag(asked, "--threads")) == ("3", "8")
