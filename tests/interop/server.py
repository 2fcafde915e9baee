"""A real server for the interoperability tests: daphne over TLS on a loopback port.

The server runs in its own process with its own data directory and database, so the
clients under test speak to it exactly as they would to a deployment: HTTPS (RFC 8620 §1.7
requires it), discovery through /.well-known/jmap, Basic or Bearer credentials.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PROJECT = Path(__file__).resolve().parents[2]
EMAIL = "interop@example.com"
PASSWORD = "interop-password-0d5e"
START_TIMEOUT = 60


@dataclass
class LiveServer:
    host: str  # "127.0.0.1:PORT", as clients want it
    ca_file: Path  # the certificate authority that signed the server's certificate
    email: str
    password: str
    token: str  # an API (Bearer) token for the user
    account_id: str
    log_file: Path

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"

    @property
    def session_url(self) -> str:
        return f"{self.base_url}/.well-known/jmap"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "groupware interop test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Database:
    """The server's database: a fresh PostgreSQL database on the server named by
    DATABASE_URL (dropped afterwards), else the default SQLite file in the data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.url: str | None = None
        self._admin_url: str | None = None
        self._name: str | None = None
        configured = os.environ.get("DATABASE_URL", "").strip()
        if configured.startswith(("postgres://", "postgresql://", "pgsql://")):
            parts = urlsplit(configured)
            self._name = f"groupware_interop_{secrets.token_hex(4)}"
            self._admin_url = urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
            self.url = urlunsplit((parts.scheme, parts.netloc, "/" + self._name, parts.query, ""))
            self._execute(f'CREATE DATABASE "{self._name}"')

    def _execute(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self._admin_url, autocommit=True) as connection:
            connection.execute(statement)

    def drop(self) -> None:
        if self._name is not None:
            self._execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')


def server_environment(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "JMAP_", "PUBLIC_URL", "SECRET_KEY"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",  # includes the test-only Note type
        DATA_DIR=str(data_dir),
        FAST_PASSWORD_HASHER="true",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(PROJECT),
    )
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


def manage(env: dict[str, str], *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def create_user(env: dict[str, str]) -> tuple[str, str]:
    """The interop user with an API token; returns (token, account id)."""
    output = manage(env, "create_user", EMAIL, "--password", PASSWORD, "--token", "interop")
    token = re.search(r"API token \(interop\): (\S+)", output)
    account = re.search(r"Account id: (\S+)", output)
    if token is None or account is None:
        raise RuntimeError(f"unexpected create_user output:\n{output}")
    return token.group(1), account.group(1)


def wait_until_listening(process: subprocess.Popen, url: str, ca_file: Path, log_file: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log_file.read_text()[-4000:]}")
        try:
            urllib.request.urlopen(url, context=context, timeout=2)
        except urllib.error.HTTPError as error:
            if error.code == 401:  # up, and asking for credentials
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {START_TIMEOUT}s:\n{log_file.read_text()[-4000:]}")


class ServerProcess:
    """Starts migrate, create_user and daphne; ``stop`` ends only what it started."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: subprocess.Popen | None = None
        self.database: Database | None = None

    def start(self) -> LiveServer:
        data_dir = self.directory / "data"
        data_dir.mkdir()
        ca_file, cert_file, key_file = make_certificates(self.directory)
        self.database = Database(data_dir)
        env = server_environment(data_dir, self.database.url)
        manage(env, "migrate", "--noinput")
        token, account_id = create_user(env)
        port = free_port()
        log_file = self.directory / "server.log"
        endpoint = f"ssl:port={port}:interface=127.0.0.1:privateKey={key_file}:certKey={cert_file}"
        with log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-e", endpoint, "groupware.asgi:application"],
                cwd=PROJECT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = LiveServer(
            host=f"127.0.0.1:{port}",
            ca_file=ca_file,
            email=EMAIL,
            password=PASSWORD,
            token=token,
            account_id=account_id,
            log_file=log_file,
        )
        wait_until_listening(self.process, server.session_url, ca_file, log_file)
        return server

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if self.database is not None:
            self.database.drop()
