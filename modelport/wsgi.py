"""The WSGI application: the site, and a leaner handler for the model files under /m/.

Browser apps load model.json and weights under /m/ thousands of times for
each page view of the site. Those requests skip the middleware only pages
and forms need (static files, CSRF, messages): the same
views, URLs, CORS, security headers, sessions and error handling, with
settings.MODEL_FILES_MIDDLEWARE instead of settings.MIDDLEWARE.
tests/test_model_files_handler.py checks both answer alike.
"""

from __future__ import annotations

import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelport.settings")

# What a server puts in a request's environ (PEP 3333), never taken from the process's.
CGI_VARIABLES = {
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH", "SERVER_NAME",
    "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT", "GATEWAY_INTERFACE",
    "SERVER_SOFTWARE", "REQUEST_URI", "RAW_URI",
}  # fmt: skip


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
        # granian (deploy/web) starts each request's environ from the process
        # environment: SECRET_KEY, DATABASE_URL… would be in request.META.
        self.process_environment = [
            key for key in os.environ if key not in CGI_VARIABLES and not key.startswith(("HTTP_", "wsgi."))
        ]

    def __call__(self, environ, start_response):
        if environ.get("SERVER_SOFTWARE") == "Granian":
            for key in self.process_environment:
                environ.pop(key, None)
        handler = self.model_files if environ.get("PATH_INFO", "").startswith("/m/") else self.site
        return handler(environ, start_response)


application = Application()
