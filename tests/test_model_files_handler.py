"""/m/ requests go through a leaner handler (modelport/wsgi.py): it must
answer every kind of model-file request exactly as the site's full
middleware stack does."""

from __future__ import annotations

import io
import sys

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections

from modelport.wsgi import application
from registry import links, services
from registry.models import Alias
from tests.test_serving import SHA, make_ready_version
from tests.tokens import api_token

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """As Django's test client does: a request's end must not close the
    connection holding the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def call(app, path: str, method: str = "GET", **headers) -> tuple[str, list[tuple[str, str]], bytes]:
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "HTTP_HOST": "testserver", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()},
    }  # fmt: skip
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started.update(status=status, headers=response_headers)

    body = b"".join(application_output := app(environ, start_response))
    if hasattr(application_output, "close"):
        application_output.close()
    headers_seen = sorted((name.lower(), value) for name, value in started["headers"] if name.lower() != "date")
    return started["status"], headers_seen, body


def test_model_files_are_answered_as_by_the_full_stack(owner, public_model, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    make_ready_version(public_model, 1)
    Alias.objects.create(model=public_model, name="production", version=public_model.versions.get())
    private = services.create_model(owner, "secret", public=False)
    make_ready_version(private, 1)
    restricted = services.create_model(owner, "only-here", public=True)
    make_ready_version(restricted, 1)
    restricted.allowed_origins = ["https://app.example"]
    restricted.save()
    link = links.mint(private, "1", 3600, ["https://app.example"], owner)
    token = api_token(owner)
    requests = [
        ("/m/alice/digits/1/model.json", "GET", {}),
        ("/m/alice/digits/production/model.json", "GET", {"Origin": "https://a.example"}),
        ("/m/alice/digits/latest/model.json", "GET", {"Accept-Encoding": "gzip"}),
        ("/m/alice/digits/1/model.json", "GET", {"Origin": "https://elsewhere.example"}),
        ("/m/alice/digits/1/model.json", "HEAD", {}),
        ("/m/alice/digits/1/model.json", "GET", {"If-None-Match": '"nope", W/"x"'}),
        (f"/m/alice/digits/blobs/{SHA}", "GET", {"Range": "bytes=0-99"}),
        (f"/m/alice/digits/blobs/{SHA}", "GET", {"Range": "bytes=5000-"}),
        ("/m/alice/digits/9/model.json", "GET", {}),
        ("/m/alice/digits/1/labels.txt", "GET", {}),
        ("/m/nobody/nothing/1/model.json", "GET", {"Origin": "https://app.example"}),
        ("/m/alice/secret/1/model.json", "GET", {}),
        ("/m/alice/secret/1/model.json", "GET", {"Authorization": f"Token {token}"}),
        ("/m/alice/secret/1/model.json", "GET", {"Authorization": "Token mp_wrong"}),
        (links.url_path(link), "GET", {"Origin": "https://app.example"}),
        (links.url_path(link), "GET", {"Origin": "https://elsewhere.example"}),
        ("/m/alice/only-here/1/model.json", "GET", {"Origin": "https://app.example"}),
        ("/m/alice/only-here/1/model.json", "GET", {"Origin": "https://elsewhere.example"}),
        ("/m/alice/digits/1/model.json", "OPTIONS", {"Origin": "https://a.example",
                                                      "Access-Control-Request-Method": "GET"}),
        ("/m/-/verify.mjs", "GET", {}),
    ]  # fmt: skip
    full_stack = WSGIHandler()
    for path, method, headers in requests:
        lean = call(application, path, method, **headers)
        full = call(full_stack, path, method, **headers)
        assert lean == full, (method, path, headers)
    # Writes under /m/ (none are model files) go through the site's own stack, CSRF included.
    status, _, _ = call(application, "/m/alice/digits/1/model.json", "POST")
    assert status.startswith("403")


def test_the_process_environment_is_not_in_requests(monkeypatch):
    """granian and wsgiref copy the process environment into each request's environ."""
    app = type(application).__new__(type(application))
    app.__dict__.update(application.__dict__)
    app.process_environment = {"DATABASE_URL": "postgres://secret@db/x", "HTTP_PROXY": "http://user:pw@proxy"}
    seen = {}

    def site(environ, start_response):
        seen.update(environ)
        return []

    app.site = site
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/", "DATABASE_URL": "postgres://secret@db/x",
               "HTTP_PROXY": "http://user:pw@proxy", "HTTP_ACCEPT": "*/*"}  # fmt: skip
    app(environ, None)
    assert "DATABASE_URL" not in seen and "HTTP_PROXY" not in seen and seen["HTTP_ACCEPT"] == "*/*"


def test_model_files_middleware_is_the_sites_in_its_order(settings):
    lean = settings.MODEL_FILES_MIDDLEWARE
    assert [m for m in settings.MIDDLEWARE if m in lean] == lean
    assert len(lean) < len(settings.MIDDLEWARE)
