"""The ``[artifact_harvest]`` section declared in get_provider_info(): every option read is declared (and the other
way round), Airflow serves the declared defaults, and they are the readers' own fallbacks (declaring changes
nothing)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from artifact_harvest.provider_config import OPTIONS, SECTION

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "artifact_harvest"
#: setting("key", <default>...) and conf.get*("artifact_harvest", "key"...)
SETTING_CALL = re.compile(r"""\bsetting\(\s*"(\w+)"(?:,\s*([^,()]+?)\s*[,)])?""")
CONF_CALL = re.compile(r"""\bconf\.get\w*\(\s*"artifact_harvest",\s*"(\w+)"(?:,\s*fallback=([^,()]+?)\s*[,)])?""")
ARITHMETIC = re.compile(r"""^[\d.\s*+]+$|^(True|False|"")$""")


def _calls() -> dict[str, list[str | None]]:
    """Option -> the literal fallbacks its readers give (None: not a literal)."""
    from artifact_harvest.core.transfer.settings import _CONFIG_KEYS

    found: dict[str, list[str | None]] = {key: [None] for key, _ in _CONFIG_KEYS.values()}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for pattern in (SETTING_CALL, CONF_CALL):
            for key, default in pattern.findall(text):
                found.setdefault(key, []).append(default.strip() if default and ARITHMETIC.match(default.strip())
                                                 else None)
    return found


@pytest.fixture
def no_section_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(f"AIRFLOW__{SECTION.upper()}__"):
            monkeypatch.delenv(name)


def test_every_option_read_is_declared_and_every_declared_one_is_read():
    read = set(_calls())
    assert read - set(OPTIONS) == set(), "read but not declared"
    assert set(OPTIONS) - read == set(), "declared but never read"


def test_declared_defaults_are_the_readers_literal_fallbacks():
    checked = 0
    for key, defaults in _calls().items():
        declared = OPTIONS[key]["default"]
        for literal in filter(None, defaults):
            value = eval(literal, {"__builtins__": {}}, {})  # digits, '.', '*', '+', True/False/"" only
            if value == "":
                assert declared is None, key
            elif isinstance(value, bool):
                assert declared == str(value), key
            else:
                assert declared is not None and float(declared) == float(value), key
            checked += 1
    assert checked >= 10


def test_airflow_serves_the_section_and_its_defaults(no_section_env):
    from airflow.configuration import conf

    options = conf.configuration_description[SECTION]["options"]
    assert set(OPTIONS) <= set(options)
    assert conf.getint(SECTION, "verify_concurrency") == 2
    assert conf.getboolean(SECTION, "shared_polls") is True
    assert conf.get(SECTION, "rate_limit_url", fallback=None) is None
    assert (SECTION, "rate_limit_url") in conf.sensitive_config_values  # a Redis URL may hold a password


def test_declaring_the_defaults_changes_no_reader(no_section_env):
    """The same settings with the declared defaults as without any provider configuration."""
    from airflow.configuration import conf

    from artifact_harvest.core.retry import RetryRule
    from artifact_harvest.core.lease import LeaseSettings
    from artifact_harvest.core.shared_poll import sharing_enabled
    from artifact_harvest.core.transfer import TransferSettings
    from artifact_harvest.ui.store import verify_concurrency

    def read() -> tuple:
        return (TransferSettings.from_config(), LeaseSettings.from_config(), RetryRule(), sharing_enabled(),
                verify_concurrency())

    declared = read()
    with conf.make_sure_configuration_loaded(with_providers=False):
        assert conf.get(SECTION, "download_piece_size", fallback=None) is None  # really without the declaration
        fallbacks = read()
    assert declared == fallbacks
    assert declared[0] == TransferSettings() and declared[1] == LeaseSettings()


def test_the_docs_list_every_declared_option():
    docs = PACKAGE.parents[1] / "docs"
    reference = (docs / "configuration.md").read_text().split("## `[artifact_harvest]`", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `(\w+)` \|", reference, flags=re.M)) == set(OPTIONS)
    own = (docs / "own-airflow.md").read_text().split("## Configuration", 1)[1]
    assert set(OPTIONS) <= set(re.findall(r"`(\w+)`", own))
