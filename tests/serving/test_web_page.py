"""The web page of `auxrec serve` in a real browser (Debian's chromium, driven by Playwright).

The server runs under uvicorn in a background thread on a free port of 127.0.0.1; the page
must show exactly what the JSON API answers, and must never request anything from
anywhere else (no CDN, no web font). It serves the SASRec+ run with one item added by
`auxrec add-items` (``run_with_added_item``), which the page marks "new".
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is absent (CI installs Debian's chromium: see .ci/run)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from auxrec.serving.service import create_app  # noqa: E402
from auxrec.serving.trained_model import load_run  # noqa: E402

READY = '[data-testid=recommendations][data-state=ready][data-for="{}"]'


@pytest.fixture(scope="module")
def server(run_with_added_item: dict[str, Any]) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(load_run(run_with_added_item["run"])), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh page on ``server`` that fails the test on a script error or a request elsewhere."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(server + "/")
    page.wait_for_selector("[data-testid=user-option]")
    yield page
    context.close()
    elsewhere = [url for url in requests if urlsplit(url).scheme != "data"
                 and urlsplit(url).netloc != urlsplit(server).netloc]
    assert requests and not elsewhere, f"the page requested {elsewhere}"
    assert not errors, errors


def api_recommend(server: str, **body: Any) -> list[str]:
    response = httpx.post(server + "/recommend", json=body)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def user_options(page: Any) -> list[str]:
    options = page.eval_on_selector_all("[data-testid=user-option]", "els => els.map(e => e.dataset.userId)")
    return list(options)


def shown(page: Any, testid: str) -> list[str]:
    return list(page.eval_on_selector_all(f"[data-testid={testid}]", "els => els.map(e => e.dataset.itemId)"))


def badged(page: Any, testid: str) -> list[str]:
    """Ids of the ``testid`` cards that show the "new" badge (items added after training)."""
    return list(page.eval_on_selector_all(
        f"[data-testid={testid}]",
        "els => els.filter(e => e.querySelector('[data-testid=new-badge]')).map(e => e.dataset.itemId)"))


def test_picking_a_user_shows_the_apis_recommendations(page: Any, server: str) -> None:
    assert page.inner_text("[data-testid=model-name]") == "sasrec+text,image,tabular"
    user = user_options(page)[1]
    page.click(f'[data-testid=user-option][data-user-id="{user}"]')
    page.wait_for_selector(READY.format(f"user:{user}"))
    assert shown(page, "rec-card") == api_recommend(server, user=user, k=10, exclude_seen=True)
    history = httpx.get(f"{server}/users/{user}/history", params={"limit": 30}).json()
    count = len(history["items"])
    page.wait_for_function(f"document.querySelectorAll('[data-testid=history-card]').length === {count}")
    assert shown(page, "history-card") == [item["id"] for item in history["items"]]
    assert page.inner_text("[data-testid=rec-card] >> nth=0 >> .rank") == "1"  # the rank is on the card

    page.select_option("[data-testid=k]", "5")  # a smaller top-k, seen items allowed
    page.uncheck("#exclude-seen")
    page.wait_for_function("document.querySelectorAll('[data-testid=rec-card]').length === 5")
    page.wait_for_selector(READY.format(f"user:{user}"))
    assert shown(page, "rec-card") == api_recommend(server, user=user, k=5, exclude_seen=False)


def test_searching_users(page: Any, server: str) -> None:
    page.fill("[data-testid=user-search]", "1")
    page.wait_for_selector('[data-testid=user-list][data-query="1"]')
    expected = httpx.get(server + "/users", params={"q": "1", "limit": 50}).json()["users"]
    options = user_options(page)
    assert options == [user["id"] for user in expected] and all(user.startswith("1") for user in options)


def test_a_new_history_built_by_clicking(page: Any, server: str) -> None:
    page.click("[data-testid=mode-history]")
    page.fill("[data-testid=item-search]", "wool")
    page.wait_for_selector('[data-testid=item-results][data-query="wool"] [data-testid=item-result]')
    found = httpx.get(server + "/items", params={"q": "wool", "limit": 40}).json()["items"]
    assert shown(page, "item-result") == [item["id"] for item in found]
    picked = shown(page, "item-result")[:3]
    for item in picked:
        page.click(f'[data-testid=item-result][data-item-id="{item}"]')
    page.wait_for_selector(READY.format("history:" + ",".join(picked)))
    assert shown(page, "history-card") == picked
    assert shown(page, "rec-card") == api_recommend(server, history=picked, k=10)
    assert not set(shown(page, "rec-card")) & set(picked)  # items already seen are not recommended

    page.click("[data-testid=history-card] >> nth=0 >> .remove")  # remove the oldest
    page.wait_for_selector(READY.format("history:" + ",".join(picked[1:])))
    assert shown(page, "rec-card") == api_recommend(server, history=picked[1:], k=10)


def test_a_recommended_item_shows_its_details_and_similar_items(page: Any, server: str) -> None:
    user = page.get_attribute("[data-testid=user-option] >> nth=0", "data-user-id")
    page.click("[data-testid=user-option] >> nth=0")
    page.wait_for_selector(READY.format(f"user:{user}"))
    item = shown(page, "rec-card")[0]
    page.click("[data-testid=rec-card] >> nth=0")
    page.wait_for_selector("[data-testid=similar-card]")
    detail = httpx.get(f"{server}/items/{item}").json()
    assert detail["title"] in page.inner_text("[data-testid=item-detail]")
    similar = httpx.get(f"{server}/similar/{item}", params={"k": 9}).json()["items"]
    assert shown(page, "similar-card") == [s["id"] for s in similar]
    hero = "document.querySelector('[data-testid=item-detail] .hero img')"
    page.wait_for_function(f"({hero} || {{}}).naturalWidth > 0")  # the image came from /items/{id}/image

    page.click("[data-testid=add-to-history]")  # into a new history, which switches mode
    page.wait_for_selector(READY.format(f"history:{item}"))
    assert shown(page, "rec-card") == api_recommend(server, history=[item], k=10)


def test_items_added_after_training_wear_a_new_badge(page: Any, server: str,
                                                     run_with_added_item: dict[str, Any]) -> None:
    new, twin, user = run_with_added_item["item"], run_with_added_item["twin"], run_with_added_item["user"]
    page.click(f'[data-testid=user-option][data-user-id="{user}"]')
    page.wait_for_selector(READY.format(f"user:{user}"))
    recommended = shown(page, "rec-card")
    assert recommended == api_recommend(server, user=user, k=10) and {new, twin} <= set(recommended)
    assert badged(page, "rec-card") == [new]  # the added item, and none of the trained ones
    badge = f'[data-testid=rec-card][data-item-id="{new}"] [data-testid=new-badge]'
    assert page.is_visible(badge) and page.inner_text(badge).strip().lower() == "new"
    count = len(httpx.get(f"{server}/users/{user}/history", params={"limit": 30}).json()["items"])
    page.wait_for_function(f"document.querySelectorAll('[data-testid=history-card]').length === {count}")
    assert badged(page, "history-card") == []  # a known user's history holds trained items only

    page.click("[data-testid=mode-history]")  # the added item in a new user's history
    page.fill("[data-testid=item-search]", new)
    page.wait_for_selector(f'[data-testid=item-results][data-query="{new}"] [data-testid=item-result]')
    assert shown(page, "item-result") == [new]
    page.click(f'[data-testid=item-result][data-item-id="{new}"]')
    page.wait_for_selector(READY.format(f"history:{new}"))
    assert badged(page, "history-card") == [new]
    assert page.is_visible(f'[data-testid=history-card][data-item-id="{new}"] [data-testid=new-badge]')
    assert shown(page, "rec-card") == api_recommend(server, history=[new], k=10)
    assert badged(page, "rec-card") == []  # the only added item is in the history, so not recommended
