"""Signed URLs carry their credentials in the query string: it is used for the request and nothing else.

``Scrubber`` cleans every text the download layer logs or raises; ``install_log_filter()`` cuts queries out of
urllib3's own DEBUG request lines (called when a ``Downloader`` is built, not at import).
"""

from __future__ import annotations

import logging
import re

from artifact_harvest.core.redact import Redactor

_BARE_QUERY = re.compile(r"(/[^\s?'\"]*)\?[^\s'\"()]+")  # urllib3 writes "url: /path?query" without a scheme
_URLLIB3_LOGGER = "urllib3.connectionpool"


def cut_queries(text: str) -> str:
    """Every ``/path?query`` in ``text`` with its query replaced by ``***``."""
    return _BARE_QUERY.sub(r"\1?***", text)


class _ScrubQueries(logging.Filter):
    """urllib3 logs every request line, query string included, at DEBUG: cut the query off."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(cut_queries(a) if isinstance(a, str) and "?" in a else a for a in record.args)
        return True


def install_log_filter() -> None:
    """Put the query filter on urllib3's request logger, once per process."""
    logger = logging.getLogger(_URLLIB3_LOGGER)
    if not any(isinstance(f, _ScrubQueries) for f in logger.filters):
        logger.addFilter(_ScrubQueries())


class Scrubber:
    """Removes the queries of every URL it was given (``add``), and any bare ``/path?query``, from a text."""

    def __init__(self) -> None:
        self._redact = Redactor()

    def add(self, query: str | None) -> None:
        self._redact.add(query)

    def __call__(self, text: str) -> str:
        """Transport errors may quote a redirect target's query that the redactor has never seen."""
        return self._redact(cut_queries(self._redact(text)))
