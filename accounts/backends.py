"""Sign-in for people only: an organisation's account never signs in, even if
someone activates it or sets a password on it in the admin site."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from accounts.models import Organization


class PeopleOnlyBackend(ModelBackend):
    def user_can_authenticate(self, user) -> bool:
        return super().user_can_authenticate(user) and not Organization.objects.filter(account=user).exists()

    def get_user(self, user_id):
        user = super().get_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None
