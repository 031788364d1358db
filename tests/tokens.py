"""API tokens for tests, made the way users make them (hashed, shown once)."""

from __future__ import annotations

from accounts.services import create_token


def api_token(user, name: str = "test", **limits) -> str:
    return create_token(user, name, **limits)[1]
