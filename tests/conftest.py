from __future__ import annotations

import os

import pytest
from rest_framework.test import APIClient

from registry import services
from tests.tokens import api_token

pytest_plugins = ["tests.e2e_fixtures", "tests.org_fixtures"]

# tensorflow_decision_forests (imported by tensorflowjs) imports IPython to
# print a banner when stdout is not a terminal, as under pytest.
os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")


@pytest.fixture(scope="session", autouse=True)
def read_generation_listener_stops(django_db_setup, django_db_blocker):
    """On PostgreSQL /m/ requests start a LISTEN connection (registry/readcache.py):
    closed before the test database is dropped."""
    yield
    from registry import readcache

    readcache._listener.stop()


@pytest.fixture(autouse=True)
def no_browser_check(settings):
    """The browser check adds seconds to every conversion: it runs in
    tests/test_browser_backends.py (and the suite's worker skips it too)."""
    settings.BROWSER_BACKENDS = []


@pytest.fixture(autouse=True)
def download_counts_written_by_the_test(monkeypatch):
    """No background writer in tests: a test that checks counts calls
    downloads.flush() itself, and nothing is left to write after it."""
    from registry import downloads

    monkeypatch.setattr(downloads, "_flusher", object())
    yield
    downloads._pending.clear()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Personas sign in with passwords; PBKDF2's 1M rounds would dominate the suite."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def model_storage(settings, tmp_path):
    """Every test gets its own empty local-disk model storage."""
    location = tmp_path / "storage"
    settings.STORAGES = {
        **settings.STORAGES,
        "models": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    return location


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    return client


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def outsider(django_user_model):
    return django_user_model.objects.create_user("mallory", password="mallory-password-1")


@pytest.fixture
def owner_client(owner) -> APIClient:
    return _token_client(owner)


@pytest.fixture
def outsider_client(outsider) -> APIClient:
    return _token_client(outsider)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def public_model(owner):
    return services.create_model(owner, "digits", "Handwritten digits", public=True)


@pytest.fixture
def private_model(owner):
    return services.create_model(owner, "secret", "Not for everyone", public=False)
