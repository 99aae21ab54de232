"""The one place a plain ``requests.Session`` is built."""

from __future__ import annotations

import requests


def plain_session() -> requests.Session:
    """A session that ignores proxy and netrc settings from the environment (``trust_env = False``): requests go
    where the provider's URL says, and no credential from the environment is added to them."""
    session = requests.Session()
    session.trust_env = False
    return session
