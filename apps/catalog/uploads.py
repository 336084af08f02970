"""Upload handling: refuse a request body over IMPORT_MAX_UPLOAD_BYTES before storing any of it."""

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Streams uploads to a temp file, but stops at the configured size (default 1 GiB).

    The declared Content-Length is checked first, so an oversized upload is refused before it is read;
    a body that lies about its length is stopped when the limit is crossed.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.request.upload_too_large = content_length > settings.IMPORT_MAX_UPLOAD_BYTES
        self._received = 0
        if self.request.upload_too_large:
            # Returning (POST, FILES) ends parsing here: the body is never read or stored.
            return QueryDict(mutable=True), MultiValueDict()
        return None

    def receive_data_chunk(self, raw_data, start):
        self._received += len(raw_data)
        if self._received > settings.IMPORT_MAX_UPLOAD_BYTES:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=True)
        return super().receive_data_chunk(raw_data, start)
