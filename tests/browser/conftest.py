"""A real browser against a real Airflow: ``airflow standalone`` plus headless Debian chromium via Playwright.

Fixtures (names kept stable, other suites copy this file):

- ``airflow_ui``: one ``airflow standalone`` for the browser tests (package scope) (SimpleAuthManager, login admin/admin, LocalExecutor with
  small parallelism, a free port, this project's DAGs and the emulator's connections). An ``AirflowUI`` with
  ``.url``, ``.username``, ``.password``, ``.home``, ``.archive``, ``.api`` (REST client) and ``.env``, and
  ``.webhook``: a local HTTP server that ``[artifact_harvest] deadline_webhook_url`` points at (its URL carries
  the token ``WEBHOOK_TOKEN``, which no log may show).
- ``browser_page``: a fresh Playwright page on ``/usr/bin/chromium``; on a failed test a full-page screenshot
  goes to ``.browser/screenshots/<test>.png`` (path printed in the report).
- ``login(page, airflow_ui)``: logs in through the real login page and waits for the UI.

Without chromium the tests skip with the reason, unless ``CI`` or ``ARTIFACT_HARVEST_REQUIRE_SERVICES=1``
is set (``.ci/run``), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.airflow_api import AirflowApi  # noqa: E402
from scripts.airflow_home import PASSWORD, USERNAME, project_airflow_env  # noqa: E402
from scripts.demo import start, stop  # noqa: E402  (its own process group; stopping it stops its children)
from tests.webhook_receiver import WebhookReceiver  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / ".browser" / "screenshots"
UI_TIMEOUT_MS = 30_000
#: the secret part of the deadline webhook's URL (docs/deadlines.md): it must never reach a log
WEBHOOK_TOKEN = "browser-webhook-t0ken"


def _browser_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("ARTIFACT_HARVEST_REQUIRE_SERVICES") == "1"


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found (apt-get install chromium); the browser tests need Debian's chromium"
    if _browser_required():
        pytest.fail(f"CI/ARTIFACT_HARVEST_REQUIRE_SERVICES set but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AirflowUI:
    url: str
    home: Path
    archive: Path
    staging: Path
    env: dict[str, str]
    log: Path
    webhook: WebhookReceiver
    username: str = USERNAME
    password: str = PASSWORD
    api: AirflowApi = field(init=False)

    def __post_init__(self) -> None:
        self.api = AirflowApi(self.url, self.username, self.password)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


#: tests that must see the shared Airflow before any other browser test has archived something
FIRST = ("test_an_empty_archive_says_what_to_do",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The browser tier shares one Airflow and one archive: the empty-archive test goes first, whichever
    module (approval, deadlines) would otherwise archive a run before it."""
    first = [item for item in items if item.name in FIRST]
    items[:] = first + [item for item in items if item.name not in FIRST]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def airflow_ui(emulator) -> Iterator[AirflowUI]:
    """``airflow standalone`` on a free port in its own home; stopped (process group) after the last browser test."""
    _require_chromium()
    from harvest_emulator.credentials import connection_env

    workdir = Path(tempfile.mkdtemp(prefix="artifact-harvest-browser-"))
    home, archive, staging = workdir / "airflow", workdir / "archive", workdir / "staging"
    for folder in (archive, staging):
        folder.mkdir(parents=True)
    port = _free_port()
    webhook = WebhookReceiver()  # bound now (its URL goes in the env), serving once Airflow starts
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **project_airflow_env(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT": str(archive),
        "AIRFLOW_VAR_ARTIFACT_STAGING_DIR": str(staging),
        "AIRFLOW__ARTIFACT_HARVEST__DEADLINE_WEBHOOK_URL": webhook.url(f"/late-runs?token={WEBHOOK_TOKEN}"),
        **connection_env(emulator.url),
    }
    env.pop("AIRFLOW_CONFIG", None)
    log = workdir / "standalone.log"
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        subprocess.run([sys.executable, "-m", "airflow", *args], env=env, check=True, timeout=300,
                       stdout=(workdir / f"{args[0]}.log").open("wb"), stderr=subprocess.STDOUT)
    webhook.start()
    proc = start([sys.executable, "-m", "airflow", "standalone"], env, log)
    ui = AirflowUI(url=f"http://127.0.0.1:{port}", home=home, archive=archive, staging=staging, env=env, log=log,
                   webhook=webhook)
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"airflow standalone exited with {proc.returncode}:\n{ui.log_tail()}")
            try:
                ui.api.wait_healthy(timeout=5, components=("metadatabase", "scheduler", "triggerer"))
                break
            except Exception:  # noqa: BLE001 - not up yet; the deadline decides
                if time.monotonic() > deadline:
                    pytest.fail(f"airflow standalone not healthy after 240 s:\n{ui.log_tail()}")
                time.sleep(0.5)
        yield ui
    finally:
        stop(proc)
        webhook.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def _chromium() -> Iterator[object]:
    """Per module: Playwright's sync API holds an asyncio loop running on the main thread while open, which
    would break ``asyncio.run()`` (deferrable tasks under ``dag.test()``) in the tests that follow."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(_chromium, request):
    """A fresh context and page; a screenshot of it is saved when the test fails."""
    context = _chromium.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOTS / f"{request.node.name}.png"
            try:
                page.screenshot(path=str(shot), full_page=True)
                report.sections.append(("screenshot", str(shot)))
                print(f"\nscreenshot of the failure: {shot}")
            except Exception as exc:  # noqa: BLE001 - the failure itself matters more than its picture
                print(f"\nno screenshot: {exc}")
        context.close()


def login(page, airflow_ui: AirflowUI) -> None:
    """Log in through the real login page (SimpleAuthManager's form) and wait for the UI's navigation."""
    page.goto(f"{airflow_ui.url}/")
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill(airflow_ui.username)
    page.get_by_label("Password").fill(airflow_ui.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    nav_link(page, "Dags").wait_for()


def nav_link(page, name: str):
    """An entry of the UI's left navigation bar (Dags, Assets, Browse, ... and plugin views)."""
    return page.locator(f'a[aria-label="{name}"], button[aria-label="{name}"]').first


@pytest.fixture(name="login")
def login_fixture():
    """``login`` as a fixture too, for tests that prefer injection to import."""
    return login


def poll(read, done=bool, timeout: float = 120):
    """``read()`` until ``done(value)``; a slow or failed answer (a loaded machine) is one more try."""
    import requests

    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = read()
        except (requests.RequestException, RuntimeError):  # RuntimeError: AirflowApi's HTTP 5xx
            time.sleep(0.5)
            continue
        if done(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"not done after {timeout} s: last {value!r}")
