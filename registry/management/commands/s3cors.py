from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry import storage


class Command(BaseCommand):
    help = "Create the S3 bucket if needed and set its CORS rule (S3_CORS_ORIGINS)."

    def handle(self, **options):
        try:
            self.stdout.write(storage.configure_bucket(settings.S3_CORS_ORIGINS))
        except storage.StorageError as exc:
            raise CommandError(str(exc)) from exc
