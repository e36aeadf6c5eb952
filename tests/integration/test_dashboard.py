"""The dashboard on a real broker and a real worker: the story API served from the read
model (sorts, filters, cursors, errors, the token setting), the live event stream, and the
pages in real headless Chromium (marked ``browser``)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from streams.engine.offline import read_jsonl
from streams.producer import produce_rows
from streams.read_model.story import words_of
from tests.conftest import SAMPLE
from tests.integration.dashboard_browser import screenshot, start_chromium
from tests.integration.worker_process import WorkerRun, read_topic

pytestmark = pytest.mark.kafka

# Why 150: enough real headlines for several multi-article stories and many single ones.
ROWS = 150
# A made-up event (no real article shares its words), dated just after the sample, from 3
# sources: the 5th article makes it emerge (5 articles, 3 sources, within 6 hours).
ZORBLAX = [
    ("Zorblax volcano erupts near Quintaria capital, thousands flee", "Quintaria Herald"),
    ("Thousands flee as Zorblax volcano erupts near Quintaria's capital", "Daily Zorb"),
    ("Zorblax volcano eruption forces thousands to flee Quintaria capital <b>live</b>", "QT"),
    ("Quintaria: Zorblax volcano erupts, thousands flee the capital", "Daily Zorb"),
    ("Volcano Zorblax erupts near the capital of Quintaria as thousands flee", "QT"),
]


def _article(n: int, title: str, source: str, minute: int) -> dict[str, Any]:
    return {
        "id": f"zorb-{n}",
        "title": title,
        "source": source,
        "url": f"https://news.example/zorblax/{n}",
        "published_at": f"2014-03-10T21:{minute:02d}:00Z",
    }


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def expected_state(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per story, what the read model must hold, derived from the stories topic itself."""
    clock = max(e["event_time"] for e in events)
    state: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"size": 0, "hour": 0, "day": 0, "last_seen": 0.0, "events": []}
    )
    for e in events:
        s = state[e["story_id"]]
        s["size"] = max(s["size"], e["story_size"])
        s["last_seen"] = max(s["last_seen"], e["last_seen"])
        s["first_seen"] = min(s.get("first_seen", e["first_seen"]), e["first_seen"])
        s["source_count"] = max(s.get("source_count", 0), e["source_count"])
        s["hour"] += e["event_time"] > clock - 3600
        s["day"] += e["event_time"] > clock - 86400
        s["headline"], s["keywords"] = e["headline"], e["keywords"]
        s["events"].append(e)
    return dict(state)


def wait_for_api(
    run: WorkerRun, stories: int, events: int, timeout_s: float = 60
) -> dict[str, Any]:
    """Until the read model applied ``events`` story events (its sparklines count each)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = get(f"{run.url}/api/stories?limit=1000")
        if (
            status == 200
            and body["caught_up"]
            and body["active_stories"] == stories
            and sum(sum(s["spark"]) for s in body["stories"]) == events
        ):
            return body
        assert time.monotonic() < deadline, f"the read model holds {body}, want {stories}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerRun]:
    worker = WorkerRun(kafka_bootstrap, tmp_path_factory.mktemp("dashboard"))
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def fed(run: WorkerRun) -> dict[str, dict[str, Any]]:
    """The first sample headlines, through the pipeline; the read model caught up."""
    rows = read_jsonl(SAMPLE)[:ROWS]
    produce_rows(rows, run.bootstrap, run.topic("articles"))
    events = read_topic(run.bootstrap, run.topic("stories"), expect=ROWS, timeout_s=240)
    assert len(events) == ROWS
    state = expected_state(events)
    wait_for_api(run, len(state), len(events))
    return state


def all_pages(run: WorkerRun, query: str, limit: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(1000):
        status, body = get(f"{run.url}/api/stories?{query}&limit={limit}{cursor}")
        assert status == 200, body
        found += body["stories"]
        if body["next_cursor"] is None:
            return found
        cursor = f"&cursor={body['next_cursor']}"
    raise AssertionError("the cursor never ended")


# --- the API --------------------------------------------------------------------------


def test_growth_ranking_is_the_topics_recent_activity(run: WorkerRun, fed) -> None:
    _, body = get(f"{run.url}/api/stories?limit=1000")
    served = [s["story_id"] for s in body["stories"]]
    want = sorted(
        fed,
        key=lambda sid: (
            -fed[sid]["hour"],
            -fed[sid]["day"],
            -fed[sid]["size"],
            -fed[sid]["last_seen"],
            sid,
        ),
    )
    assert served == want
    by_id = {s["story_id"]: s for s in body["stories"]}
    for sid, s in fed.items():
        got = by_id[sid]
        assert (got["size"], got["articles_last_hour"], got["articles_last_day"]) == (
            s["size"],
            s["hour"],
            s["day"],
        )
        assert got["headline"] == s["headline"] and got["keywords"] == s["keywords"]
        assert sum(got["spark"]) == len(s["events"])
    assert any(s["articles_last_hour"] < s["size"] for s in body["stories"]), (
        "the sample spans hours: some stories grew earlier than the last hour"
    )


@pytest.mark.parametrize("sort", ["size", "recent", "new", "sources"])
def test_every_sort_pages_through_all_stories_once_in_order(run: WorkerRun, fed, sort) -> None:
    keys = {
        "size": lambda s: (-s["size"], -s["last_seen"], s["story_id"]),
        "recent": lambda s: (-s["last_seen"], s["story_id"]),
        "new": lambda s: (-s["first_seen"], s["story_id"]),
        "sources": lambda s: (-s["source_count"], -s["size"], s["story_id"]),
    }
    paged = all_pages(run, f"sort={sort}", limit=7)
    ids = [s["story_id"] for s in paged]
    assert len(ids) == len(set(ids)) == len(fed)
    want = sorted(({"story_id": sid, **s} for sid, s in fed.items()), key=keys[sort])
    assert ids == [s["story_id"] for s in want]


def test_filters_match_what_the_topic_says(run: WorkerRun, fed) -> None:
    big = [sid for sid, s in fed.items() if s["size"] >= 3]
    assert big, "the sample should have stories of 3+ articles"
    served = all_pages(run, "min_size=3&sort=size", limit=5)
    assert sorted(s["story_id"] for s in served) == sorted(big)

    word = sorted(words_of(fed[big[0]]["headline"]), key=len)[-1]
    served = all_pages(run, f"q={word.upper()}", limit=3)
    want = {sid for sid, s in fed.items() if word in words_of(s["headline"], *s["keywords"])}
    assert {s["story_id"] for s in served} == want and want

    source = fed[big[0]]["events"][0]["source"]
    served = all_pages(run, f"source={urllib.request.quote(source)}", limit=3)
    want = {sid for sid, s in fed.items() if any(e["source"] == source for e in s["events"])}
    assert {s["story_id"] for s in served} == want

    _, none = get(f"{run.url}/api/stories?q=qwxzyv+{word}")
    assert none["stories"] == [] and none["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("sort=popular", "sort"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=5000", "limit"),
        ("min_size=-1", "min_size"),
        ("cursor=not-a-cursor", "cursor"),
        ("q=" + "x" * 201, "q"),
    ],
)
def test_bad_queries_are_400_naming_the_field(run: WorkerRun, fed, query, field) -> None:
    status, body = get(f"{run.url}/api/stories?{query}")
    assert status == 400 and body["field"] == field and body["error"]


def test_a_cursor_of_another_sort_is_refused(run: WorkerRun, fed) -> None:
    _, body = get(f"{run.url}/api/stories?sort=size&limit=1")
    status, refused = get(f"{run.url}/api/stories?sort=recent&cursor={body['next_cursor']}")
    assert status == 400 and refused["field"] == "cursor" and "size" in refused["error"]


def test_story_detail_articles_why_and_timeline(run: WorkerRun, fed) -> None:
    sid = max(fed, key=lambda s: fed[s]["size"])
    events = fed[sid]["events"]
    status, story = get(f"{run.url}/api/stories/{sid}")
    assert status == 200
    assert story["articles_seen"] == len(events)
    newest_first = [e["article_id"] for e in reversed(events)]
    assert [a["article_id"] for a in story["articles"]] == newest_first[:50]
    by_id = {e["article_id"]: e for e in events}
    for article in story["articles"]:
        event = by_id[article["article_id"]]
        assert article["title"] == event["title"] and article["source"] == event["source"]
        assert article["why"]["similarity"] == event["similarity"]
        assert article["why"]["lexical_similarity"] == event["lexical_similarity"]
        assert article["why"]["shared_terms"] == event["shared_terms"]
    first = events[0]
    assert story["started_by"]["article_id"] == first["article_id"]
    if first["rejected_story_id"]:
        closest = story["started_by"]["why"]["closest_story_not_joined"]
        assert closest["story_id"] == first["rejected_story_id"]
        assert closest["score"] == first["rejected_score"]
    groups = defaultdict(int)
    for e in events:
        groups[e["dup_group_id"]] += 1
    assert {g["dup_group_id"]: g["articles"] for g in story["groups"]} == dict(groups)

    pages = all_article_pages(run, sid)
    assert [a["article_id"] for a in pages] == newest_first

    status, timeline = get(f"{run.url}/api/stories/{sid}/timeline")
    assert status == 200
    assert sum(b["articles"] for b in timeline["buckets"]) == len(events)
    width = timeline["bucket_seconds"]
    assert all(b["start"] % width == 0 for b in timeline["buckets"])
    assert len(timeline["buckets"]) <= 60
    span = fed[sid]["last_seen"] - fed[sid]["first_seen"]
    assert span / width <= 60, "the bucket must fit the span in 60 bars"
    joined_order: list[str] = []
    for e in sorted(events, key=lambda e: (e["event_time"], e["source"])):
        if e["source"] not in joined_order:
            joined_order.append(e["source"])
    assert [s["source"] for s in timeline["sources"]] == joined_order


def all_article_pages(run: WorkerRun, sid: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, body = get(f"{run.url}/api/stories/{sid}/articles?limit=2{cursor}")
        assert status == 200, body
        found += body["articles"]
        if not body["next_cursor"]:
            return found
        cursor = f"&cursor={body['next_cursor']}"


@pytest.mark.parametrize("path", ["", "/articles", "/timeline"])
def test_an_unknown_story_is_404(run: WorkerRun, fed, path) -> None:
    status, body = get(f"{run.url}/api/stories/st-nope{path}")
    assert status == 404 and body["field"] == "story_id" and "/api/stories" in body["error"]


def test_read_model_metrics(run: WorkerRun, fed) -> None:
    _, text = get(f"{run.url}/metrics")
    assert run.metric("storywatch_dashboard_stories") == len(fed)
    assert run.metric("storywatch_dashboard_caught_up") == 1
    applied = next(
        line
        for line in text.splitlines()
        if line.startswith('storywatch_dashboard_events_applied_total{kind="story"}')
    )
    assert float(applied.split()[-1]) == ROWS
    assert "storywatch_dashboard_sse_clients" in text


def read_events(lines: Iterator[str], until: Any, limit: int = 500) -> list[dict[str, Any]]:
    """Parse SSE events off a response's ``lines`` until ``until(event)`` holds."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if current:
                if "data" in current:
                    current["json"] = json.loads(current["data"])
                events.append(current)
                if until(current) or len(events) >= limit:
                    return events
            current = {}
            continue
        name, _, value = line.partition(":")
        current[name] = value[1:] if value.startswith(" ") else value
    return events


def _about(article_id: str) -> Any:
    return lambda e: e.get("json", {}).get("article", {}).get("article_id") == article_id


def test_event_stream_pushes_and_resumes(run: WorkerRun, fed) -> None:
    first = {
        "id": "glimmer-1",
        "title": "Glimmerfen suspension bridge reopens after two years of repairs",
        "source": "Fen Gazette",
        "published_at": "2014-03-10T21:41:00Z",
    }
    second = {**first, "id": "glimmer-2", "title": "Glimmerfen bridge open again to traffic"}
    second["source"] = "Fen Post"
    with httpx.Client(timeout=httpx.Timeout(120)) as client:
        with client.stream("GET", f"{run.url}/api/events/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            hello = read_events(lines, lambda e: e.get("event") == "hello")
            assert hello[-1]["json"]["caught_up"] is True
            produce_rows([first], run.bootstrap, run.topic("articles"))
            pushed = read_events(lines, _about("glimmer-1"))[-1]
        assert pushed["event"] == "story" and pushed["json"]["story"]["size"] == 1
        produce_rows([second], run.bootstrap, run.topic("articles"))  # while disconnected
        deadline = time.monotonic() + 120
        while get(f"{run.url}/api/stories?q=glimmerfen")[1]["stories"][0]["size"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        headers = {"Last-Event-ID": pushed["id"]}
        with client.stream("GET", f"{run.url}/api/events/stream", headers=headers) as response:
            resumed = read_events(response.iter_lines(), lambda e: "id" in e)
        assert resumed[0]["event"] == "hello"
        assert resumed[-1]["json"]["article"]["article_id"] == "glimmer-2"
        assert resumed[-1]["event"] == "join"
        headers = {"Last-Event-ID": "another-worker-7"}
        with client.stream("GET", f"{run.url}/api/events/stream", headers=headers) as response:
            reset = read_events(response.iter_lines(), lambda e: e.get("event") == "reset", limit=3)
        assert reset[-1]["event"] == "reset"


def test_pages_and_their_static_files(run: WorkerRun, fed) -> None:
    for path, script in (
        ("/", "dashboard.js"),
        ("/stories/st-x", "story.js"),
        ("/alerts", "alerts.js"),
    ):
        with urllib.request.urlopen(f"{run.url}{path}", timeout=10) as response:
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            assert script in response.read().decode()
    for name, kind in (("app.css", "text/css"), ("common.js", "text/javascript")):
        with urllib.request.urlopen(f"{run.url}/static/{name}", timeout=10) as response:
            assert response.headers["Content-Type"].startswith(kind)
    for name in ("nope.js", "notes.txt"):
        status, body = get(f"{run.url}/static/{name}")
        assert status == 404 and body["field"] == "name"


@pytest.mark.browser
def test_token_setting_guards_the_data_not_the_page(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, browser: WebDriver
) -> None:
    token = "dash-token-0123456789"
    locked = WorkerRun(kafka_bootstrap, tmp_path_factory.mktemp("locked"))
    locked.settings = {
        "STORYWATCH_DASHBOARD_TOKEN_REQUIRED": "true",
        "STORYWATCH_API_TOKENS": f"viewer:{token}",
    }
    locked.start()
    try:
        for path in ("/api/stories", "/api/stories/st-x", "/api/alerts/recent"):
            status, body = get(f"{locked.url}{path}")
            assert status == 401 and body["field"] == "authorization", path
            status, _ = get(f"{locked.url}{path}", token="wrong-token-123")
            assert status == 401
        status, body = get(f"{locked.url}/api/stories", token=token)
        assert status == 200 and body["stories"] == []
        status, _ = get(f"{locked.url}/api/events/stream?access_token=wrong-token-123")
        assert status == 401
        status, page = get(f"{locked.url}/")
        assert status == 200 and "dashboard.js" in page
        # The page asks for the token, keeps it for the tab and then reads and follows.
        browser.get(f"{locked.url}/")
        form = WebDriverWait(browser, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#banner form input")
        )
        assert "needs an API token" in browser.find_element(By.ID, "banner").text
        screenshot(browser, "token-asked")
        form[0].send_keys(token + "\n")
        live = "return document.body.dataset.live"
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(live) == "connected")
        status_line = browser.find_element(By.ID, "status").text
        assert "0 active stories" in status_line
        assert not browser.find_element(By.ID, "banner").is_displayed()
    finally:
        browser.execute_script("sessionStorage.clear()")
        locked.stop()


# --- the pages in Chromium ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


def rows(driver: WebDriver) -> list[str]:
    """The listed headlines, read in one script call: the list re-renders as events arrive,
    and reading element by element could meet one the page had just replaced (a stale
    element reference, seen once under load)."""
    texts = driver.execute_script(
        "return Array.from(document.querySelectorAll('li.story .headline'), (e) => e.innerText);"
    )
    return [str(text) for text in texts]


@pytest.mark.browser
def test_stories_appear_without_reload(run: WorkerRun, fed, browser: WebDriver) -> None:
    browser.set_window_size(1280, 900)
    browser.get(f"{run.url}/")
    WebDriverWait(browser, 30).until(lambda d: len(rows(d)) >= 10)
    _, body = get(f"{run.url}/api/stories?limit=50")
    assert rows(browser)[:10] == [s["headline"] for s in body["stories"][:10]]
    screenshot(browser, "stories")


@pytest.mark.browser
def test_a_story_after_the_page_loaded_shows_up_live(
    run: WorkerRun, fed, browser: WebDriver
) -> None:
    browser.get(f"{run.url}/?sort=recent")
    WebDriverWait(browser, 30).until(lambda d: len(rows(d)) >= 10)
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "connected"
    )
    browser.execute_script("window.notReloaded = true")
    articles = [_article(n, t, s, 45 + n) for n, (t, s) in enumerate(ZORBLAX[:4], start=1)]
    produce_rows(articles, run.bootstrap, run.topic("articles"))
    WebDriverWait(browser, 120).until(lambda d: any("Zorblax" in r for r in rows(d)))
    assert browser.execute_script("return window.notReloaded") is True
    WebDriverWait(browser, 120).until(
        lambda d: "4 articles" in d.find_element(By.CSS_SELECTOR, "li.story").text
    )
    assert "Zorblax" in rows(browser)[0], "the newest story ranks first by latest article"
    screenshot(browser, "stories-live")


@pytest.mark.browser
def test_a_search_narrows_the_list_and_stays_in_the_url(
    run: WorkerRun, fed, browser: WebDriver
) -> None:
    browser.get(f"{run.url}/")
    WebDriverWait(browser, 30).until(lambda d: len(rows(d)) >= 10)
    before = len(rows(browser))
    browser.find_element(By.ID, "q").send_keys("zorblax")
    WebDriverWait(browser, 30).until(lambda d: len(rows(d)) == 1)
    assert "Zorblax" in rows(browser)[0] and before > 1
    assert "q=zorblax" in browser.current_url
    browser.get(browser.current_url)  # a bookmarked view: the same filter, the same list
    WebDriverWait(browser, 30).until(lambda d: len(rows(d)) == 1)
    assert browser.find_element(By.ID, "q").get_attribute("value") == "zorblax"
    screenshot(browser, "search")


@pytest.mark.browser
def test_the_story_view_shows_articles_and_why(run: WorkerRun, fed, browser: WebDriver) -> None:
    browser.get(f"{run.url}/?q=zorblax")
    WebDriverWait(browser, 30).until(lambda d: len(rows(d)) == 1)
    browser.find_element(By.CSS_SELECTOR, "li.story a.headline").click()
    WebDriverWait(browser, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.article")) == 4
    )
    assert "/stories/st-" in browser.current_url
    articles = browser.find_element(By.ID, "articles")
    assert "similarity" in articles.text and "lexical" in articles.text
    assert "<b>live</b>" in articles.text, "article text is shown as text"
    assert not articles.find_elements(By.CSS_SELECTOR, "li.article > div > a b")
    assert "started this story" in articles.text
    assert "Started by" in browser.find_element(By.ID, "started-note").text
    WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "svg.timeline rect")
    )
    sources = browser.find_element(By.ID, "sources").text
    assert sources.index("Quintaria Herald") < sources.index("Daily Zorb")
    screenshot(browser, "story")


@pytest.mark.browser
def test_the_alerts_view_shows_an_alert_live(run: WorkerRun, fed, browser: WebDriver) -> None:
    browser.get(f"{run.url}/alerts")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "connected"
    )
    browser.execute_script("window.notReloaded = true")
    assert "Zorblax" not in browser.find_element(By.ID, "alerts").text
    produce_rows([_article(5, *ZORBLAX[4], 50)], run.bootstrap, run.topic("articles"))
    WebDriverWait(browser, 120).until(lambda d: "Zorblax" in d.find_element(By.ID, "alerts").text)
    assert browser.execute_script("return window.notReloaded") is True
    assert "5 articles from 3 sources" in browser.find_element(By.ID, "alerts").text
    screenshot(browser, "alerts")


@pytest.mark.browser
def test_phone_width_has_no_horizontal_overflow(run: WorkerRun, fed, browser: WebDriver) -> None:
    browser.set_window_size(390, 844)
    try:
        overflow = "return document.documentElement.scrollWidth - window.innerWidth"
        browser.get(f"{run.url}/")
        WebDriverWait(browser, 30).until(lambda d: len(rows(d)) >= 10)
        assert browser.execute_script(overflow) <= 0
        screenshot(browser, "phone-stories")
        browser.find_element(By.CSS_SELECTOR, "li.story a.headline").click()
        WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "li.article"))
        assert browser.execute_script(overflow) <= 0
        screenshot(browser, "phone-story")
    finally:
        browser.set_window_size(1280, 900)


@pytest.mark.browser
def test_the_page_says_when_disconnected_and_reconnects(
    run: WorkerRun, fed, browser: WebDriver
) -> None:
    """Last: it restarts the worker."""
    browser.get(f"{run.url}/")
    live = "return document.body.dataset.live"
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(live) == "connected")
    browser.execute_script("window.notReloaded = true")
    run.stop()
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(live) == "disconnected")
    banner = browser.find_element(By.ID, "banner")
    assert banner.is_displayed() and "Disconnected" in banner.text
    screenshot(browser, "disconnected")
    run.start()
    WebDriverWait(browser, 120).until(lambda d: d.execute_script(live) == "connected")
    assert not banner.is_displayed()
    assert browser.execute_script("return window.notReloaded") is True
    WebDriverWait(browser, 60).until(lambda d: len(rows(d)) >= 10)


def test_a_second_worker_serves_the_same_stories(
    run: WorkerRun, fed, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every worker serves every story: a second worker of the same app (which cannot hold
    the one cluster partition as well) answers exactly what the first one does."""
    other = WorkerRun(run.bootstrap, tmp_path_factory.mktemp("second"), run_id=run.run_id)
    other.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            _, here = get(f"{run.url}/api/stories?limit=1000")
            _, there = get(f"{other.url}/api/stories?limit=1000")
            if there.get("caught_up") and here["stories"] == there["stories"]:
                break
            assert time.monotonic() < deadline, "the second worker serves other stories"
            time.sleep(1)
        assert len(there["stories"]) == here["active_stories"] > len(fed)
        sid = there["stories"][0]["story_id"]
        assert get(f"{other.url}/api/stories/{sid}")[1] == get(f"{run.url}/api/stories/{sid}")[1]
    finally:
        other.stop()
