"""The WSGI application: the site, and a leaner handler for the model files under /m/.

Browser apps load model.json and weights under /m/ thousands of times for
each page view of the site. Those reads (GET, HEAD, OPTIONS) skip the
middleware only pages and forms need (static files, CSRF, messages): the
same views, URLs, CORS, security headers, sessions and error handling, with
settings.MODEL_FILES_MIDDLEWARE instead of settings.MIDDLEWARE.
tests/test_model_files_handler.py checks both answer alike.
"""

from __future__ import annotations

import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelport.settings")

# What the server itself puts in every request's environ (PEP 3333).
SERVER_VARIABLES = {
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_NAME",
    "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
}  # fmt: skip
READS = {"GET", "HEAD", "OPTIONS"}


class ModelFilesHandler(WSGIHandler):
    def load_middleware(self, is_async=False):
        # BaseHandler reads settings.MIDDLEWARE; this runs once, at start-up.
        site_middleware = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.MODEL_FILES_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = site_middleware


class Application:
    def __init__(self) -> None:
        django.setup(set_prefix=False)
        self.site = WSGIHandler()
        self.model_files = ModelFilesHandler()
        # granian (deploy/web) and wsgiref (runserver) start each request's
        # environ from the process environment: SECRET_KEY, DATABASE_URL… would
        # be in request.META, and an HTTP_PROXY would look like a header.
        self.process_environment = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}

    def __call__(self, environ, start_response):
        for key, value in self.process_environment.items():
            if environ.get(key) == value:
                environ.pop(key)
        # Only reads: the site's own pages under /m/… (forms that POST) keep CSRF.
        reading_files = environ.get("REQUEST_METHOD") in READS and environ.get("PATH_INFO", "").startswith("/m/")
        handler = self.model_files if reading_files else self.site
        return handler(environ, start_response)


application = Application()
