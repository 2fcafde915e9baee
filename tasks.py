#!/usr/bin/env python3
"""Run, test, check and benchmark the server (the project's Makefile equivalent).

Standard library only, so that it runs with any Python 3.11+ before anything is installed:

    python3 tasks.py run [--host H] [--port P]   migrate, create the demo account, serve HTTP
                                                 and WebSocket with daphne (default 127.0.0.1:8000)
                                                 and receive mail over LMTP/SMTP (manage.py serve_mail)
    python3 tasks.py test [PYTEST ARGS...]       the test suite; pytest's exit code is kept
    python3 tasks.py lint                        ruff, the migrations check, Django's system checks
    python3 tasks.py check [PYTEST ARGS...]      lint, then the test suite
    python3 tasks.py bench [BENCH ARGS...]       the HTTP benchmark (python3 tasks.py bench --help)
    python3 tasks.py bench-mail [ARGS...]        the mail store benchmark (python3 tasks.py bench-mail --help)
    python3 tasks.py bench-push [ARGS...]        the push benchmark (python3 tasks.py bench-push --help)
    python3 tasks.py bench-delivery [ARGS...]    the LMTP delivery benchmark (python3 tasks.py bench-delivery --help)
    python3 tasks.py setup                       only create .venv and install requirements.txt

Every command first makes sure ``.venv`` exists and holds requirements.txt (reinstalled only
when the file's hash changes), then runs itself again with the virtualenv's Python.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
VENV_PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
REQUIREMENTS = ROOT / "requirements.txt"
BENCH_REQUIREMENTS = ROOT / "bench" / "requirements.txt"
DEMO_EMAIL = "demo@example.com"
COMMANDS = ("run", "test", "lint", "check", "bench", "bench-mail", "bench-push", "bench-delivery", "setup")


def say(message: str) -> None:
    print(f"tasks.py: {message}", flush=True)


def fail(message: str, code: int = 1) -> None:
    print(f"tasks.py: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def call(*argv: str | Path, env: dict[str, str] | None = None) -> int:
    """Run a program (never through a shell) in the project directory; return its exit code."""
    return subprocess.call([str(arg) for arg in argv], cwd=ROOT, env=env)  # noqa: S603


def replace_process(*argv: str | Path) -> None:
    """Become another program, so that its exit code and signals are exactly its own."""
    args = [str(arg) for arg in argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(args[0], args)  # noqa: S606


# --- the virtualenv --------------------------------------------------------------------------


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def venv_works() -> bool:
    if not VENV_PYTHON.exists():
        return False
    probe = subprocess.run(  # noqa: S603
        [str(VENV_PYTHON), "-c", "import sys; assert sys.version_info >= (3, 11)"], capture_output=True
    )
    return probe.returncode == 0


def create_venv() -> None:
    if VENV.exists():
        say(f"{VENV} is unusable (missing or too old Python); creating it again")
        shutil.rmtree(VENV)
    say(f"creating the virtualenv {VENV}")
    result = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0 or not VENV_PYTHON.exists():
        shutil.rmtree(VENV, ignore_errors=True)
        sys.stderr.write(result.stdout + result.stderr)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        fail(
            "could not create the virtualenv with `python3 -m venv`.\n"
            "On Debian and Ubuntu the venv module is a separate package; install it and retry:\n"
            f"    sudo apt-get install python3-venv   (or python{version}-venv)\n"
            "Elsewhere, install a Python 3.11+ that includes the venv and ensurepip modules."
        )


def install(requirements: Path) -> None:
    """pip install -r FILE into .venv, unless that exact file was installed already."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = VENV / f".installed-{requirements.relative_to(ROOT).as_posix().replace('/', '-')}.sha256"
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    say(f"installing {requirements.relative_to(ROOT)} into .venv")
    code = call(VENV_PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", requirements)
    if code != 0:
        fail(f"pip could not install {requirements.relative_to(ROOT)} (exit code {code})", code)
    stamp.write_text(digest + "\n")


def ensure_venv(command: str) -> None:
    """Outside the virtualenv: prepare it and run this script again inside it."""
    if not in_venv() and not venv_works():
        create_venv()
    install(REQUIREMENTS)
    if command in ("bench", "bench-mail", "bench-push", "bench-delivery"):
        install(BENCH_REQUIREMENTS)
    if not in_venv():
        replace_process(VENV_PYTHON, Path(__file__).resolve(), command, *sys.argv[2:])


# --- commands (these run inside the virtualenv) ------------------------------------------------


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "groupware.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def demo_account(base_url: str) -> None:
    """Create demo@example.com with a random password the first time; say how to log in."""
    from accounts.models import User
    from accounts.services import user_create

    session_url = f"{base_url}/.well-known/jmap"
    if User.objects.filter(email__iexact=DEMO_EMAIL).exists():
        print(
            f"\nDemo account {DEMO_EMAIL} already exists (its password was printed when it was created).\n"
            f"  Reset the password:  {VENV_PYTHON.relative_to(ROOT)} manage.py changepassword {DEMO_EMAIL}\n"
            f"  Session URL:         {session_url}\n",
            flush=True,
        )
        return
    password = secrets.token_urlsafe(12)
    user_create(email=DEMO_EMAIL, password=password, name="Demo")
    print(
        "\n"
        "Demo account created:\n"
        f"  email:        {DEMO_EMAIL}\n"
        f"  password:     {password}\n"
        f"  Session URL:  {session_url}\n"
        f"  Try:          curl -u '{DEMO_EMAIL}:{password}' {session_url}\n",
        flush=True,
    )


def command_run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="tasks.py run", description="Serve HTTP and WebSocket with daphne.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    options = parser.parse_args(args)
    django_setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=1)
    host = f"[{options.host}]" if ":" in options.host else options.host
    demo_account(settings.PUBLIC_URL or f"http://{host}:{options.port}")
    # The LMTP and SMTP listeners run beside the web server (MAIL_LMTP_LISTEN, MAIL_SMTP_LISTEN).
    mail = subprocess.Popen([str(VENV_PYTHON), "manage.py", "serve_mail"], cwd=ROOT)  # noqa: S603
    say(
        f"receiving mail on LMTP {settings.MAIL_LMTP_LISTEN} and SMTP {settings.MAIL_SMTP_LISTEN} "
        "(manage.py serve_mail)"
    )
    say(f"serving http://{host}:{options.port}/ with daphne (Ctrl-C stops)")
    web = subprocess.Popen(  # noqa: S603
        [str(VENV_PYTHON), "-m", "daphne", "-b", options.host, "-p", str(options.port), "groupware.asgi:application"],
        cwd=ROOT,
    )

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # stop both children, as Ctrl-C does
    code = 0
    try:
        code = web.wait()
    except KeyboardInterrupt:
        code = 130
    finally:
        for child in (web, mail):
            if child.poll() is None:
                child.terminate()
        for child in (web, mail):
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
    raise SystemExit(code)


def command_test(args: list[str]) -> None:
    replace_process(VENV_PYTHON, "-m", "pytest", *args)


def command_lint() -> int:
    steps = [
        ("ruff check", [BIN / "ruff", "check", "."]),
        ("migrations check", [VENV_PYTHON, "manage.py", "makemigrations", "--check", "--dry-run"]),
        ("manage.py check", [VENV_PYTHON, "manage.py", "check"]),
    ]
    for title, argv in steps:
        say(title)
        code = call(*argv)
        if code != 0:
            say(f"{title} failed (exit code {code})")
            return code
    return 0


def command_bench(args: list[str]) -> None:
    replace_process(VENV_PYTHON, "-m", "bench.run", *args)


def command_bench_mail(args: list[str]) -> None:
    replace_process(VENV_PYTHON, "-m", "bench.mail", *args)


def command_bench_push(args: list[str]) -> None:
    replace_process(VENV_PYTHON, "-m", "bench.push", *args)


def command_bench_delivery(args: list[str]) -> None:
    replace_process(VENV_PYTHON, "-m", "bench.delivery", *args)


def main() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036  # this file may be started by an older python3
        fail(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        raise SystemExit(0 if len(sys.argv) >= 2 and sys.argv[1] in ("-h", "--help", "help") else 2)
    os.chdir(ROOT)
    command, args = sys.argv[1], sys.argv[2:]
    ensure_venv(command)
    if command == "setup":
        say("the virtualenv is ready")
    elif command == "run":
        command_run(args)
    elif command == "test":
        command_test(args)
    elif command == "lint":
        raise SystemExit(command_lint())
    elif command == "check":
        code = command_lint()
        if code != 0:
            raise SystemExit(code)
        command_test(args)
    elif command == "bench":
        command_bench(args)
    elif command == "bench-mail":
        command_bench_mail(args)
    elif command == "bench-push":
        command_bench_push(args)
    elif command == "bench-delivery":
        command_bench_delivery(args)


if __name__ == "__main__":
    main()
