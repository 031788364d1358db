"""API permissions that depend on the token a request uses."""

from __future__ import annotations

from rest_framework import permissions

from accounts.models import AccessToken


def request_token(request) -> AccessToken | None:
    return request.auth if isinstance(request.auth, AccessToken) else None


class ReadOnlyToken(permissions.BasePermission):
    """A read-scope token may only read, anywhere in the API."""

    message = "This token is read-only: its scope is 'read'."

    def has_permission(self, request, view) -> bool:
        token = request_token(request)
        return token is None or token.scope == AccessToken.Scope.WRITE or request.method in permissions.SAFE_METHODS


class ManagesAccount(permissions.BasePermission):
    """Signed in, or a write token without limits."""

    message = "Managing tokens and organisations needs a sign-in or a write token without model or organisation limits."

    def has_permission(self, request, view) -> bool:
        if not request.user.is_authenticated:
            return False
        token = request_token(request)
        if token is None:
            return True
        if token.is_restricted:  # not even to read: the account's tokens, organisations and log are beyond its limits
            return False
        return token.scope == AccessToken.Scope.WRITE or request.method in permissions.SAFE_METHODS
