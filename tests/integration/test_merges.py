"""Story merges in the running pipeline (real broker, real worker process, real model): a
bridging article merges two stories, the ``merged`` event goes on ``stories`` once, the API
answers the absorbed id with the survivor, and what fired for the absorbed story does not
fire again for the merged one (the emerging rule and a subscription).

The input merges deterministically: story A (three reports of an eruption grounding
flights, three sources) fires the emerging rule and a subscription on "airlines"; story B
(a tsunami warning, one source) does not join A (cosine ~0.2-0.35); two reports of both
score >= 0.6 against both and complete the merge into B (4 articles against A's 3); a last
report names "airlines" from a new source. `storywatch cluster` with the same settings
merges it the same way (checked by the first test); the bridge scores lie between 0.7 and
0.8, so STORYWATCH_MERGE_SCORE=0.6 leaves room for the model's float noise.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import TimeoutException

from config.settings import Settings
from streams.engine.embedding import Embedder
from streams.engine.emerging import EMERGING
from streams.engine.offline import cluster_articles
from streams.engine.params import ClusterParams
from streams.producer import produce_rows
from streams.stages.embed import Limits
from tests.integration.test_subscriptions import ALICE, api
from tests.integration.worker_process import WorkerRun, broker_lag, read_to_end, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

MERGE_SETTINGS = {
    "STORYWATCH_MERGE_BRIDGES": "2",
    "STORYWATCH_MERGE_SCORE": "0.6",
    # A fires at its third article (three sources); B, all from one source, never does
    # alone, but would once a second source joins it (the last article) unless it
    # inherited that A's alert already fired.
    "STORYWATCH_EMERGING_MIN_ARTICLES": "3",
    "STORYWATCH_EMERGING_MIN_SOURCES": "2",
    "STORYWATCH_API_TOKENS": f"alice:{ALICE}",
}


def _row(article_id: str, source: str, minute: int, title: str) -> dict[str, Any]:
    return {
        "id": article_id,
        "title": title,
        "text": "",
        "source": source,
        "published_at": f"2026-03-01T10:{minute:02d}:00Z",
    }


# Articles five minutes apart; A's three from three sources, the rest from one but the last.
TITLES = {
    "a1": "Volcano erupts on remote Pacific island, ash cloud grounds flights",
    "a2": "Ash cloud from Pacific island volcano eruption halts air travel",
    "a3": "Airlines cancel flights as volcanic ash spreads after island eruption",
    "b1": "Tsunami warning issued for coastal towns in New Zealand",
    "b2": "New Zealand coast evacuated under tsunami alert",
    "x1": "Island volcano eruption triggers tsunami warning for New Zealand coast "
    "and grounds flights",
    "x2": "Tsunami alert in New Zealand after Pacific volcano erupts, ash halts flights",
    "x3": "Pacific eruption: New Zealand tsunami warning as airlines cancel flights",
}
SOURCES = {"a1": "Wire One", "a2": "Wire Two", "a3": "Wire Three", "x3": "Wire Four"}
ROWS = [
    _row(article_id, SOURCES.get(article_id, "Solo News"), 5 * n, title)
    for n, (article_id, title) in enumerate(TITLES.items())
]


@pytest.fixture(scope="module")
def worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerRun]:
    run = WorkerRun(kafka_bootstrap, tmp_path_factory.mktemp("merges"))
    run.settings.update(MERGE_SETTINGS)
    run.start()
    yield run
    run.stop()


# The rows before the bridging article x2: both stories exist, nothing merged yet.
BEFORE_MERGE = list(TITLES).index("x2")


def _story_page_following_the_merge(
    worker: WorkerRun, profile: Path, produce_rest: Callable[[], None]
) -> str:
    """In a real browser, the page of the story the merge will keep (b1's), opened before
    the merge; ``produce_rest()`` then sends the bridging articles. Returns the page's merge
    line once the live `merged` event has made it appear ("" if it never did)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.integration.dashboard_browser import screenshot, start_chromium

    before = read_topic(
        worker.bootstrap, worker.topic("stories"), expect=BEFORE_MERGE, timeout_s=240
    )
    survivor = _story_of(before)["b1"]
    browser = start_chromium(profile)
    try:
        browser.get(f"{worker.url}/stories/{survivor}")
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "headline").text)
        assert not browser.find_element(By.ID, "merges").is_displayed()
        produce_rest()
        try:
            # Why 120 s: the worker decides two articles, the read model follows `stories`.
            WebDriverWait(browser, 120).until(
                lambda d: "Absorbed" in d.find_element(By.ID, "merges").text
            )
        except TimeoutException:
            return ""
        screenshot(browser, "story-merged-live")
        return str(browser.find_element(By.ID, "merges").text)
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def merged_run(worker: WorkerRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A subscription on "airlines", then the articles (the story page of the survivor open
    in a browser before the bridging ones); every output once all is processed."""
    status, sub = api(
        worker,
        "POST",
        "/api/subscriptions",
        {
            "name": "airlines",
            "filter": {"keywords": {"any": ["airlines"]}, "triggers": ["new_story"]},
        },
    )
    assert status == 201, sub
    produce_rows(ROWS[:BEFORE_MERGE], worker.bootstrap, worker.topic("articles"))
    live_note = _story_page_following_the_merge(
        worker,
        tmp_path_factory.mktemp("chromium-live"),
        lambda: produce_rows(ROWS[BEFORE_MERGE:], worker.bootstrap, worker.topic("articles")),
    )
    first = read_topic(
        worker.bootstrap, worker.topic("stories"), expect=len(ROWS) + 1, timeout_s=240
    )
    assert len(first) == len(ROWS) + 1, f"{len(first)} story events: {worker.log()[-3000:]}"
    # Both agents on `stories` processed every event once the group committed its end.
    deadline = time.monotonic() + 120
    stories_tp = [(worker.topic("stories"), 0)]
    while broker_lag(worker, stories_tp)[stories_tp[0]] > 0:
        assert time.monotonic() < deadline, "the stories topic was not processed in 120 s"
        time.sleep(1)
    return {
        "sub": sub,
        "stories": read_to_end(worker.bootstrap, worker.topic("stories")),
        "alerts": read_to_end(worker.bootstrap, worker.topic("alerts")),
        "live_note": live_note,
    }


def test_the_offline_mode_merges_this_input_the_same_way(embedder: Embedder) -> None:
    """The input itself: `storywatch cluster` with the worker's settings merges A into B."""
    params = ClusterParams.from_settings(
        Settings(
            **{k.removeprefix("STORYWATCH_").lower(): v for k, v in MERGE_SETTINGS.items()}
        ).engine
    )
    run = cluster_articles(ROWS, embedder, params, limits=Limits.from_settings(Settings().embed))
    story_of = {x.article_id: x.story_id for x in run.assignments}
    assert [(m.story_id, m.absorbed_id, m.article_id) for m in run.merges] == [
        (story_of["b1"], story_of["a1"], "x2")
    ]


def _story_of(stories: list[dict[str, Any]]) -> dict[str, str]:
    return {e["article_id"]: e["story_id"] for e in stories if e["decision"] != "merged"}


def test_the_bridging_article_merges_the_stories_once(merged_run: dict[str, Any]) -> None:
    stories = merged_run["stories"]
    story_of = _story_of(stories)
    a, b = story_of["a1"], story_of["b1"]
    assert a != b, "the two stories must start apart"
    merges = [e for e in stories if e["decision"] == "merged"]
    assert Counter(e["absorbed_id"] for e in merges) == {a: 1}  # A (3) went into B (4)
    (merge,) = merges
    assert merge["story_id"] == b and merge["article_id"] == "x2"
    assert merge["merge"]["bridges"] == 2 and merge["merge"]["score"] >= 0.6
    assert merge["merge"]["survivor_size"] == 4 and merge["merge"]["absorbed_size"] == 3
    assert merge["story_size"] == 7
    # After the bridging article's own event, on the survivor's key; later ones join B.
    order = [e["article_id"] + (":merged" if e["decision"] == "merged" else "") for e in stories]
    assert order.index("x2:merged") == order.index("x2") + 1
    assert story_of["x3"] == b


def test_the_api_answers_the_absorbed_id_with_the_survivor(
    worker: WorkerRun, merged_run: dict[str, Any]
) -> None:
    story_of = _story_of(merged_run["stories"])
    a, b = story_of["a1"], story_of["b1"]
    deadline = time.monotonic() + 60
    while True:  # the read model follows the topic on its own consumer
        status, detail = api(worker, "GET", f"/api/stories/{a}")
        if (status == 200 and detail.get("size") == len(ROWS)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200, detail
    assert detail["story_id"] == b and detail["merged_into"] == b
    assert [m["story_id"] for m in detail["merged_from"]] == [a]
    assert {x["article_id"] for x in detail["articles"]} == {r["id"] for r in ROWS}
    listed = api(worker, "GET", "/api/stories?sort=size")[1]["stories"]
    assert [s["story_id"] for s in listed] == [b]


def test_what_fired_for_the_absorbed_story_is_not_fired_again(
    merged_run: dict[str, Any],
) -> None:
    story_of = _story_of(merged_run["stories"])
    a, b = story_of["a1"], story_of["b1"]
    alerts = merged_run["alerts"]
    emerging = [x["id"] for x in alerts if x["type"] == EMERGING]
    assert emerging == [f"{a}:emerging"], "the merged story's emerging alert fired again"
    sub_id = merged_run["sub"]["id"]
    mine = [x["id"] for x in alerts if x.get("data", {}).get("subscription_id") == sub_id]
    assert mine == [f"{sub_id}:{a}:new_story"], "the subscription fired again after the merge"
    assert f"{sub_id}:{b}:new_story" not in mine


def test_the_story_page_of_the_absorbed_id_shows_the_merged_story(
    worker: WorkerRun, merged_run: dict[str, Any], tmp_path: Any
) -> None:
    """In a real browser: the page of the absorbed story shows the survivor, says it was
    merged into it, and links both stories."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.integration.dashboard_browser import screenshot, start_chromium

    story_of = _story_of(merged_run["stories"])
    a, b = story_of["a1"], story_of["b1"]
    browser = start_chromium(tmp_path / "chromium")
    try:
        browser.get(f"{worker.url}/stories/{a}")
        # Why 60 s: the read model follows `stories` on its own consumer.
        note = WebDriverWait(browser, 60).until(
            lambda d: (
                d.find_element(By.ID, "merges").is_displayed() and d.find_element(By.ID, "merges")
            )
        )
        assert f"Story {a} was merged into this one" in note.text
        assert f"Absorbed {a}" in note.text
        links = {x.get_attribute("href") for x in note.find_elements(By.TAG_NAME, "a")}
        assert links == {f"{worker.url}/stories/{b}", f"{worker.url}/stories/{a}"}
        articles = browser.find_elements(By.CSS_SELECTOR, "#articles li")
        assert len(articles) == len(ROWS), "the page lists the merged story's articles"
        screenshot(browser, "story-merged")
    finally:
        browser.quit()


def test_an_open_story_page_follows_the_merge_live(merged_run: dict[str, Any]) -> None:
    """The survivor's page, open before the merge, shows what it absorbed once the live
    `merged` event arrives (no reload by the user)."""
    a = _story_of(merged_run["stories"])["a1"]
    assert f"Absorbed {a}" in merged_run["live_note"], "the open page did not follow the merge"
