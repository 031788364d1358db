"""``Authorization: Token <key>`` against hashed tokens (django-rest-knox).

knox's own check deletes every expired token of the user on each request
(a query per token); here an expired token is refused in words and kept, so
its owner sees it as expired on the tokens page, and "last used" is written
at most once a minute.
"""

from __future__ import annotations

import binascii
from datetime import timedelta
from hmac import compare_digest

from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.crypto import hash_token
from knox.settings import CONSTANTS
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import AccessToken
from registry import readcache

LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenAuthentication(KnoxTokenAuthentication):
    def candidates(self, key_prefix: str) -> list[AccessToken]:
        return list(AccessToken.objects.filter(token_key=key_prefix).select_related("user", "user__organization"))

    def authenticate_credentials(self, token: bytes):
        try:
            key = token.decode("ascii")
            digest = hash_token(key)
        except (UnicodeDecodeError, TypeError, binascii.Error):
            raise AuthenticationFailed("Invalid token.") from None
        for candidate in self.candidates(key[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if not compare_digest(digest, candidate.digest):
                continue
            if candidate.is_expired:
                raise AuthenticationFailed(f"This token expired at {candidate.expiry:%Y-%m-%d %H:%M} UTC.")
            if not candidate.user.is_active or hasattr(candidate.user, "organization"):
                raise AuthenticationFailed("This token's user is inactive.")
            now = timezone.now()
            if candidate.last_used_at is None or now - candidate.last_used_at > LAST_USED_RESOLUTION:
                AccessToken.objects.filter(pk=candidate.pk).update(last_used_at=now)
                candidate.last_used_at = now
            return candidate.user, candidate
        raise AuthenticationFailed("Invalid token.")


class RememberedTokenAuthentication(TokenAuthentication):
    """Token rows remembered between writes (registry/readcache.py), for /m/;
    expiry and the user's state are still checked on every request."""

    def __init__(self, request) -> None:
        super().__init__()
        self.request = request

    def candidates(self, key_prefix: str) -> list[AccessToken]:
        load = super().candidates
        return readcache.remember(self.request, ("tokens", key_prefix), lambda: load(key_prefix))


def authenticate(request) -> tuple[object, AccessToken | None]:
    """For plain Django views (/m/): the token's user and token, or the session
    user and None. An invalid token counts as none (files of public models
    stay loadable); the API answers it with 401 instead."""
    try:
        found = RememberedTokenAuthentication(request).authenticate(request)
    except AuthenticationFailed:
        found = None
    if found:
        return found
    return request.user, None
