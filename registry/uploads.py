from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework.exceptions import APIException


class UploadTooLarge(APIException):
    status_code = 413
    default_code = "upload_too_large"

    def __init__(self):
        super().__init__(f"The upload is larger than the {settings.MAX_UPLOAD_BYTES} byte limit.")


class LimitedUploadHandler(FileUploadHandler):
    """Refuse uploads over MAX_UPLOAD_BYTES before and while they stream in.

    Django has no total upload cap of its own; this handler sits first in
    FILE_UPLOAD_HANDLERS and passes data through to the next one.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.received = 0
        if content_length and content_length > settings.MAX_UPLOAD_BYTES:
            raise UploadTooLarge()

    def receive_data_chunk(self, raw_data, start):
        self.received = start + len(raw_data)
        if self.received > settings.MAX_UPLOAD_BYTES:
            raise UploadTooLarge()
        return raw_data

    def file_complete(self, file_size):
        return None
