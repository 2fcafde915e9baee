"""Every setting that comes from the environment is read here, once, and checked.

A bad value stops the process at start-up with ``ImproperlyConfigured`` instead of
surfacing later as a confusing runtime error (12-factor configuration, fail fast).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_str(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def data_dir() -> Path:
    path = Path(env_str("DATA_DIR", str(BASE_DIR / "data")))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"DATA_DIR {path} cannot be created: {exc}") from None
    return path


def secret_key(directory: Path) -> str:
    """SECRET_KEY from the environment, or generated once and kept in the data directory."""
    key = env_str("SECRET_KEY")
    if key is not None:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long")
        return key
    key_file = directory / "secret_key"
    if key_file.exists():
        key = key_file.read_text().strip()
        if len(key) >= 32:
            return key
    key = secrets.token_urlsafe(50)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def database(url: str | None, directory: Path) -> dict:
    """Translate DATABASE_URL (sqlite:///path or postgres://user:pw@host:port/db) to Django's form."""
    if url is None:
        return _sqlite(str(directory / "groupware.sqlite3"))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc:  # sqlite://relative/path is a common typo for sqlite:///
            raise ImproperlyConfigured("DATABASE_URL for SQLite must look like sqlite:///absolute/path")
        if not path or path == "/":
            raise ImproperlyConfigured("DATABASE_URL for SQLite needs a file path")
        return _sqlite(path)
    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured("DATABASE_URL for PostgreSQL needs a database name")
        options: dict[str, object] = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if env_bool("DATABASE_PREPARED_STATEMENTS", True):
            # Parameters bound by the server, and a statement run a second time on a
            # connection is prepared: PostgreSQL stops planning the same few statements
            # of every request and delivery again (measured: a third of its CPU per
            # delivered message). Off for a pooler in transaction mode (e.g. PgBouncer
            # before 1.21), which can't keep prepared statements.
            options.setdefault("server_side_binding", True)
            options.setdefault("prepare_threshold", 1)
        try:
            port = str(parts.port or 5432)
        except ValueError:
            raise ImproperlyConfigured("DATABASE_URL has an invalid port") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": port,
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
            # Off by default: a health check is a round trip on every request, and a broken
            # connection already surfaces as a 503 the client retries.
            "CONN_HEALTH_CHECKS": env_bool("DATABASE_CONN_HEALTH_CHECKS", False),
            "OPTIONS": options,
            "TEST": {"NAME": env_str("TEST_DATABASE_NAME", f"test_{name}")},
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {scheme!r} is not supported (use sqlite or postgres)")


def _sqlite(path: str) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # IMMEDIATE makes every transaction take the write lock at BEGIN, so two writers
        # queue instead of failing half-way with "database is locked".
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def redis_url() -> str | None:
    url = env_str("REDIS_URL")
    if url is None:
        return None
    if urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"REDIS_URL must be a redis:// or rediss:// URL, got {url!r}")
    return url


def public_url() -> str | None:
    url = env_str("PUBLIC_URL")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ImproperlyConfigured(f"PUBLIC_URL must be an absolute http(s) URL, got {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True)
class BlobStorageConfig:
    backend: str  # "file" or "s3"
    location: str
    options: dict


def blob_storage(directory: Path) -> BlobStorageConfig:
    """BLOB_STORAGE: unset (a local directory), file:///path, or s3://bucket/prefix?endpoint_url=..."""
    raw = env_str("BLOB_STORAGE")
    if raw is None:
        return BlobStorageConfig("file", str(directory / "blobs"), {})
    parts = urlsplit(raw)
    if parts.scheme == "file":
        if not parts.path:
            raise ImproperlyConfigured("BLOB_STORAGE file:// needs a path")
        return BlobStorageConfig("file", unquote(parts.path), {})
    if parts.scheme == "s3":
        if not parts.hostname:
            raise ImproperlyConfigured("BLOB_STORAGE s3:// needs a bucket name")
        options: dict[str, object] = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if env_bool("DATABASE_PREPARED_STATEMENTS", True):
            # Parameters bound by the server, and a statement run a second time on a
            # connection is prepared: PostgreSQL stops planning the same few statements
            # of every request and delivery again (measured: a third of its CPU per
            # delivered message). Off for a pooler in transaction mode (e.g. PgBouncer
            # before 1.21), which can't keep prepared statements.
            options.setdefault("server_side_binding", True)
            options.setdefault("prepare_threshold", 1)
        allowed = {"endpoint_url", "region_name", "access_key", "secret_key"}
        unknown = set(options) - allowed
        if unknown:
            raise ImproperlyConfigured(f"BLOB_STORAGE has unknown options: {', '.join(sorted(unknown))}")
        options["bucket_name"] = parts.hostname
        options["location"] = parts.path.strip("/")
        return BlobStorageConfig("s3", parts.path.strip("/"), options)
    raise ImproperlyConfigured(f"BLOB_STORAGE must be file:///path or s3://bucket/prefix, got {raw!r}")
