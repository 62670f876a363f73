"""Query photos stay in memory, never on disk, and the upload stops as soon as it passes the limit."""

from __future__ import annotations

import io

from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from catalog_search import conf
from catalog_search.exceptions import ImageTooLarge


class LimitedMemoryUploadHandler(FileUploadHandler):
    """Keeps each uploaded file in memory up to ``MAX_IMAGE_BYTES``; past that, 413."""

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.buffer = io.BytesIO()
        self.limit = conf.settings().MAX_IMAGE_BYTES

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        if start + len(raw_data) > self.limit:
            raise ImageTooLarge(f"The image is larger than the {self.limit:,}-byte limit.")
        self.buffer.write(raw_data)
        return None

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            self.buffer,
            self.field_name,
            self.file_name,
            self.content_type,
            file_size,
            self.charset,
            self.content_type_extra,
        )
