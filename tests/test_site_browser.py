"""Every page of a seeded demo city, crawled in a real Chromium as a citizen and as the mayor.

The crawl starts at the landing page and the dashboard and follows every same-origin link, so
pages added later are covered without editing this test. On each page: no uncaught script error,
no console error, no failed request to our own server, and no request at all to another host
(no CDN: the city's internal network has no way out). A full-page screenshot of each goes to
``test-artifacts/site/<who>/`` for a person to look at.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest

from citydesk.auth import Role, create_user
from citydesk.seed import seed
from citydesk.simulator.runner import Simulator
from citydesk.web.app import App
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

MAX_PAGES = 80
SETTLE_MS = 1500
"""After ``load``, the time a page gets to fetch its figures and draw them."""
NOT_PAGES = re.compile(r"^/(api|static|sta|openapi\.json|logout)(/|$)|\.(json|geojson|csv|xml|png)$")
PASSWORD = "demo city password"


@pytest.fixture
def city(app: App) -> App:
    """The demo data set (every seeder), a small simulated S-DoT network with two hours behind it,
    a mayor and a member of staff."""
    seed(app.engine)
    simulator = Simulator(app, sensors_per_district=1, backfill_hours=2)

    async def provision() -> None:
        await simulator.provision()
        await simulator.backfill(2)

    asyncio.run(provision())
    now = datetime.now(UTC)
    create_user(app.engine, "mayor.oh", Role.MAYOR, PASSWORD, now=now)
    return app


def slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"


def crawl(browser: Any, base: str, who: str, sign_in: bool) -> dict[str, list[str]]:
    """Visit every page reachable from ``/`` and ``/dashboard``; the problems seen on each."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="ko-KR")
    outside: list[str] = []

    def route(r: Any) -> None:
        if urlsplit(r.request.url).netloc == urlsplit(base).netloc:
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    if sign_in:
        page.goto(f"{base}/login?next=/")
        page.fill("input[name=name]", "mayor.oh")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(base + "/")
    problems: dict[str, list[str]] = {}
    current: list[str] = []
    page.on("pageerror", lambda e: current.append(f"script error: {e}"))
    page.on("console", lambda m: current.append(f"console: {m.text}") if m.type == "error" else None)
    page.on(
        "response",
        lambda r: (
            current.append(f"{r.status} {r.url}") if r.status >= 400 and r.url.startswith(base) else None
        ),
    )
    seen: set[str] = set()
    queue = deque(["/", "/dashboard"])
    folder = ARTIFACTS / "site" / who
    folder.mkdir(parents=True, exist_ok=True)
    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        current.clear()
        page.goto(base + path, wait_until="load")
        page.wait_for_timeout(SETTLE_MS)
        page.screenshot(path=str(folder / f"{slug(path)}.png"), full_page=True)
        if current or outside:
            problems[path] = [*current, *(f"outside request: {u}" for u in outside)]
            outside.clear()
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            parts = urlsplit(href)
            if f"{parts.scheme}://{parts.netloc}" != base or NOT_PAGES.search(parts.path):
                continue
            link = parts.path + (f"?{parts.query}" if parts.query else "")
            if link not in seen:
                queue.append(link)
    context.close()
    assert len(seen) >= 3, seen
    return problems


def test_every_page_renders_cleanly_for_a_citizen(city: App, live_server: str, browser: Any) -> None:
    assert crawl(browser, live_server, "citizen", sign_in=False) == {}


def test_every_page_renders_cleanly_for_the_mayor(city: App, live_server: str, browser: Any) -> None:
    assert crawl(browser, live_server, "mayor", sign_in=True) == {}
