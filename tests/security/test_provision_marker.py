"""What `superset/provision` keeps on disk about its secrets: the `.initialised` marker in Superset's data directory
remembers which admin password and SECRET_KEY the metadata DB was made with, so that a changed password is applied
and a changed key refused. It must not make the admin password cheap to guess for whoever reads the file (a backup,
another user of the host): readable by its owner alone, no unsalted fast hash of any secret in it.

Superset's commands are recorded, not run: this is about the marker, and runs in a second.
"""
from __future__ import annotations

import hashlib
import importlib.util
import secrets
import stat
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

from stack import StackError

ROOT = Path(__file__).resolve().parents[2]
FAST_HASHES = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "blake2s", "sha3_256", "sha3_512")


def load_provision():
    loader = SourceFileLoader("superset_provision_marker", str(ROOT / "superset" / "provision"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture
def provision():
    return load_provision()


def initialise(provision, data_dir: Path, monkeypatch, *, password: str, key: str) -> list[tuple[str, ...]]:
    """Provision: `initialise` with these secrets in the environment; the Superset commands it would run."""
    monkeypatch.setenv("SUPERSET_ADMIN_PASSWORD", password)
    monkeypatch.setenv("SUPERSET_SECRET_KEY", key)
    server = provision.SupersetServer(data_dir, "127.0.0.1", 8088, secrets_file=data_dir.parent / "unused.env")
    commands: list[tuple[str, ...]] = []
    data_dir.mkdir(parents=True, exist_ok=True)  # as the real commands leave it
    monkeypatch.setattr(server, "superset", lambda *args, env=None: commands.append(args))
    server.initialise()
    return commands


def fast_digests(secret: str) -> list[str]:
    """Every unsalted fast hash of `secret` an attacker would try, as hex and cut to 8 digits (a prefix that long
    already confirms a guess)."""
    return [hashlib.new(name, secret.encode()).hexdigest()[:8] for name in FAST_HASHES]


def test_the_marker_is_readable_by_its_owner_alone(provision, tmp_path, monkeypatch):
    data_dir = tmp_path / "superset"
    initialise(provision, data_dir, monkeypatch, password="admin-" + secrets.token_hex(4), key=secrets.token_hex(16))
    mode = stat.S_IMODE((data_dir / ".initialised").stat().st_mode)
    assert mode & 0o077 == 0, f".initialised has mode {mode:o}: others can read what it keeps of the secrets"


def test_the_marker_holds_no_unsalted_hash_of_a_secret(provision, tmp_path, monkeypatch):
    password, key = "correct horse battery staple", "k-" + secrets.token_hex(16)
    first, second = tmp_path / "a" / "superset", tmp_path / "b" / "superset"
    initialise(provision, first, monkeypatch, password=password, key=key)
    initialise(provision, second, monkeypatch, password=password, key=key)
    markers = [(folder / ".initialised").read_text() for folder in (first, second)]
    for text in markers:
        assert password not in text and key not in text
        leaked = [d for secret in (password, key) for d in fast_digests(secret) if d in text]
        assert not leaked, f"the marker holds an unsalted hash of a secret: {text}"
    # salted: the same password in two data dirs is kept as two different values
    stored = [dict(line.split("=", 1) for line in text.split())["admin_password"] for text in markers]
    assert stored[0] != stored[1]


def test_a_changed_password_is_applied_and_an_unchanged_one_is_not(provision, tmp_path, monkeypatch):
    data_dir, key = tmp_path / "superset", secrets.token_hex(16)
    created = initialise(provision, data_dir, monkeypatch, password="first-password", key=key)
    assert [c[:2] for c in created] == [("db", "upgrade"), ("fab", "create-admin"), ("init",)]
    assert initialise(provision, data_dir, monkeypatch, password="first-password", key=key) == []
    changed = initialise(provision, data_dir, monkeypatch, password="second-password", key=key)
    assert [c[:2] for c in changed] == [("fab", "reset-password")]
    assert initialise(provision, data_dir, monkeypatch, password="second-password", key=key) == []


def test_a_changed_secret_key_is_refused(provision, tmp_path, monkeypatch):
    data_dir = tmp_path / "superset"
    initialise(provision, data_dir, monkeypatch, password="a-password", key="the-first-key")
    with pytest.raises(StackError, match="SUPERSET_SECRET_KEY differs"):
        initialise(provision, data_dir, monkeypatch, password="a-password", key="another-key")


def test_a_marker_written_before_keeps_its_key_check_and_is_sealed(provision, tmp_path, monkeypatch):
    """A data dir initialised by the earlier provision (16 hex digits of SHA-256 per secret, mode 644)."""
    data_dir = tmp_path / "superset"
    data_dir.mkdir()
    key, password = "an-old-key", "an-old-password"
    legacy = {name: hashlib.sha256(value.encode()).hexdigest()[:16] for name, value in
              (("secret_key", key), ("admin_password", password))}
    marker = data_dir / ".initialised"
    marker.write_text(f"install={provision.stamp(provision.REQUIREMENTS)}\nsecret_key={legacy['secret_key']}\n"
                      f"admin_password={legacy['admin_password']}\n")
    marker.chmod(0o644)
    with pytest.raises(StackError, match="SUPERSET_SECRET_KEY differs"):
        initialise(provision, data_dir, monkeypatch, password=password, key="not-the-old-key")
    # the right key passes; the password cannot be told from the old form, so it is set once more
    assert [c[:2] for c in initialise(provision, data_dir, monkeypatch, password=password, key=key)] == [
        ("fab", "reset-password")]
    text = marker.read_text()
    assert legacy["secret_key"] not in text and legacy["admin_password"] not in text
    assert stat.S_IMODE(marker.stat().st_mode) & 0o077 == 0
