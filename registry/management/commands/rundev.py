from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Development: migrate, create an admin on first start, run the web server and one Celery worker."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, addr: str, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_admin()
        if settings.S3_BUCKET:
            call_command("s3cors")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "modelport", "worker", "--pool=solo", "-l", "info"],
        )
        web = subprocess.Popen([sys.executable, "manage.py", "runserver", addr])
        self.stdout.write(f"Modelport is starting at http://{addr}/ (Ctrl-C stops the server and the worker)")
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop both on `kill` too
        try:
            while worker.poll() is None and web.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for process in (web, worker):
                if process.poll() is None:
                    process.terminate()
            for process in (web, worker):
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()

    def _ensure_admin(self) -> None:
        credentials = settings.VAR_DIR / "admin-credentials.txt"
        users = get_user_model().objects
        if not users.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            users.create_superuser("admin", password=password)
            credentials.write_text(f"username: admin\npassword: {password}\n")
            credentials.chmod(0o600)
        if credentials.exists():
            self.stdout.write(f"Sign in at http://127.0.0.1:8000/login/ with\n{credentials.read_text()}")
            self.stdout.write(f"(saved in {credentials}; change it at /-/admin/)")
