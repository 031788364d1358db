"""Add the model.json loads the nginx front logged to the download counts."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from registry import download_log


class Command(BaseCommand):
    help = "Count the model.json loads in the nginx front's downloads log (deploy/nginx.conf)."

    def add_arguments(self, parser):
        parser.add_argument("log", type=Path, help="e.g. /var/log/nginx/modelport-downloads.log")
        parser.add_argument("--state", type=Path, help="where to keep the read position (default: LOG.offset)")
        parser.add_argument("--follow", action="store_true", help="keep reading as the log grows")
        parser.add_argument("--every", type=float, default=5.0, help="seconds between reads with --follow")

    def handle(self, *args, log: Path, state: Path | None, follow: bool, every: float, **options):
        while True:
            added = download_log.ingest(log, state)
            if not follow:
                self.stdout.write(f"{added} loads counted from {log}.")
                return
            close_old_connections()
            time.sleep(every)
