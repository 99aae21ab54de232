"""The pure parts of core.transfer: header helpers, the scrubber, and the urllib3 filter installed on purpose."""

from __future__ import annotations

import logging
import subprocess
import sys

from artifact_harvest.core.staging import Sidecar
from artifact_harvest.core.transfer import Downloader, headers
from artifact_harvest.core.transfer.redaction import Scrubber


def test_validator_prefers_a_strong_etag():
    assert headers.validator({"ETag": '"abc"', "Last-Modified": "Mon"}) == '"abc"'
    assert headers.validator({"ETag": 'W/"abc"', "Last-Modified": "Mon"}) == "Mon"  # weak: not for If-Range
    assert headers.validator({}) is None


def test_total_from_content_range_else_a_200s_length():
    assert headers.total(206, {"Content-Range": "bytes 5-9/100", "Content-Length": "5"}) == 100
    assert headers.total(206, {"Content-Range": "bytes 5-9/*"}) is None
    assert headers.total(200, {"Content-Length": "42"}) == 42
    assert headers.total(206, {"Content-Length": "42"}) is None


def test_changes_names_what_differs():
    known = Sidecar('"v1"', 100)
    assert headers.changes(known, '"v1"', 100) == ""
    assert headers.changes(known, '"v2"', 101) == 'validator "v1" -> "v2", total 100 -> 101 bytes'
    assert headers.changes(None, '"v1"', 100) == "no record of the staged version"


def test_scrubber_cuts_known_and_bare_queries():
    scrub = Scrubber()
    scrub.add("X-Signature=s3cr3t")
    text = scrub("GET https://h/o?X-Signature=s3cr3t failed; redirect /b/o?Sig=other 'x'")
    assert "s3cr3t" not in text and "Sig=other" not in text and "/b/o?***" in text


def test_urllib3_filter_is_installed_by_the_downloader_not_by_the_import(tmp_path):
    code = (
        "import logging, pathlib\n"
        "import artifact_harvest.core.transfer as t\n"
        "log = logging.getLogger('urllib3.connectionpool')\n"
        "before = len(log.filters)\n"
        "t.Downloader(pathlib.Path(%r)); t.Downloader(pathlib.Path(%r))\n"
        "print(before, len(log.filters))\n" % (str(tmp_path), str(tmp_path))
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["0", "1"]  # none at import, one after two downloaders


def test_filter_cuts_the_query_of_urllib3_request_lines(tmp_path, caplog):
    Downloader(tmp_path)
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug('%s "%s %s"', "http://h:80", "GET", "/o?Signature=s3cr3t")
    assert "/o?***" in caplog.text and "s3cr3t" not in caplog.text
