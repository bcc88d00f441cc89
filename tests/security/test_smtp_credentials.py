"""The alert e-mail channel keeps the SMTP password off the network path: with STARTTLS it talks only to a server
whose certificate is valid for the host it dialled (Python's smtplib checks neither the certificate nor the name
unless given a context), and it never logs in without TLS except to a server on this host.

Real servers (aiosmtpd on 127.0.0.1, STARTTLS with certificates made here by `openssl`); the trusted CA is given the
way a deployment gives one, SSL_CERT_FILE.
"""
from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from interactions.alerting.channels import EmailChannel, Notification
from stack import free_port

NOTIFICATION = Notification("spike|2026-01-01T10:01:00Z", "firing", {
    "alert_id": "spike|2026-01-01T10:01:00Z", "rule": "spike", "description": "", "metric": "events_per_minute",
    "comparison": ">", "threshold": 100.0, "window": "1 minute", "window_start": "2026-01-01T10:01:00Z",
    "window_end": "2026-01-01T10:02:00Z", "value": 150.0, "subject": None, "first_seen": "2026-01-01T10:01:00Z",
    "last_seen": "2026-01-01T10:01:00Z"})
PASSWORD = "smtp-password-6f1d"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Path:
    """A CA, a server certificate it signs for localhost/127.0.0.1 and one for another host name; and a self-signed
    certificate for localhost that no CA vouches for."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificates")
    folder = tmp_path_factory.mktemp("certificates")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    for name, names in (("local", "DNS:localhost,IP:127.0.0.1"), ("other", "DNS:mail.example")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={names.split(',')[0][4:]}", cwd=folder)
        (folder / f"{name}.ext").write_text(f"subjectAltName={names}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=folder)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "self.key", "-out", "self.pem", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=folder)
    return folder


class Mailbox:
    """An SMTP server on 127.0.0.1 that accepts any login (recording it) and records mail."""

    def __init__(self, certificate: Path | None = None, *, tls_required: bool = False) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mail: list[bytes] = []
        self.logins: list[tuple[bytes, bytes]] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's API)
                mailbox.mail.append(envelope.content)
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            mailbox.logins.append((auth_data.login, auth_data.password))
            return AuthResult(success=True)

        context = None
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certificate, certificate.with_suffix(".key"))
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=context,
                                     require_starttls=tls_required, authenticator=authenticator,
                                     auth_require_tls=tls_required)


@pytest.fixture
def mailbox_with(request) -> Iterator:
    started: list[Mailbox] = []

    def start(certificate: Path | None = None, *, tls_required: bool = False) -> Mailbox:
        mailbox = Mailbox(certificate, tls_required=tls_required)
        mailbox.controller.start()
        started.append(mailbox)
        return mailbox

    yield start
    for mailbox in started:
        mailbox.controller.stop()


def channel(host: str, port: int, **settings) -> EmailChannel:
    return EmailChannel(host, port, sender="job@test", recipients=["ops@test"], username="alerts",
                        password=PASSWORD, timeout_s=10, **settings)


def test_starttls_delivers_to_a_server_whose_certificate_verifies_for_its_name(certificates, mailbox_with,
                                                                               monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))
    mailbox = mailbox_with(certificates / "local.pem", tls_required=True)
    channel("localhost", mailbox.port, starttls=True).deliver(NOTIFICATION)
    assert len(mailbox.mail) == 1 and mailbox.logins == [(b"alerts", PASSWORD.encode())]


@pytest.mark.parametrize("certificate", ["self.pem", "other.pem"], ids=["self-signed", "for-another-host"])
def test_starttls_refuses_a_certificate_it_cannot_verify_before_sending_the_password(certificates, mailbox_with,
                                                                                    monkeypatch, certificate):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))
    mailbox = mailbox_with(certificates / certificate, tls_required=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        channel("localhost", mailbox.port, starttls=True).deliver(NOTIFICATION)
    assert mailbox.logins == [] and mailbox.mail == []


@pytest.mark.parametrize("host", ["mail.example", "10.0.0.25", "192.168.1.1"])
def test_a_login_without_tls_to_another_host_is_refused_at_once(host):
    with pytest.raises(ValueError, match="without TLS") as refused:
        channel(host, 25, starttls=False)
    assert PASSWORD not in str(refused.value) and "smtp_starttls" in str(refused.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_login_without_tls_to_this_host_is_allowed(mailbox_with, host):
    mailbox = mailbox_with()
    channel(host, mailbox.port, starttls=False).deliver(NOTIFICATION)
    assert len(mailbox.mail) == 1 and mailbox.logins == [(b"alerts", PASSWORD.encode())]
