"""The harness itself: the real login page lets admin in."""

from __future__ import annotations

from tests.browser.conftest import login, nav_link


def test_login_through_the_real_login_page(airflow_ui, browser_page):
    login(browser_page, airflow_ui)
    assert "/auth/login" not in browser_page.url
    assert nav_link(browser_page, "Dags").is_visible()
