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

    def __call__(self, environ, start_response):
        handler = self.model_files if environ.get("PATH_INFO", "").startswith("/m/") else self.site
        return handler(environ, start_response)


application = Application()
