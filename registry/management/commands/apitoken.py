from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.models import AccessToken
from accounts.services import create_token

TOKEN_NAME = "manage.py apitoken"
MIGRATED_TOKEN_NAME = "API token (from before hashed tokens)"  # accounts/migrations/0002


class Command(BaseCommand):
    help = (
        "Create USER if missing and print a new write API token for it (as the last line). "
        "Only the token's hash is stored: keep the printed value."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--rotate",
            action="store_true",
            help="Revoke the tokens this command made before, and those carried over from before hashed tokens.",
        )

    def handle(self, username: str, rotate: bool, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save()
            self.stderr.write(f"Created user {username}.")
        if rotate:
            AccessToken.objects.filter(user=user, name__in=[TOKEN_NAME, MIGRATED_TOKEN_NAME]).delete()
        _, key = create_token(user, TOKEN_NAME, AccessToken.Scope.WRITE)
        self.stdout.write(key)
