"""Lexical evidence: terms, entities, Title Case detection, document frequencies, TF-IDF."""

from __future__ import annotations

import math

import pytest

from streams.contracts.records import EmbeddedArticle
from streams.engine.article import Article
from streams.engine.evidence import (
    TERM_BODY_CHARS,
    TITLE_WEIGHT,
    DocumentFrequencies,
    TextEvidence,
    entities,
    is_title_case,
    term_vector,
    terms,
)

# --- terms -----------------------------------------------------------------------------


def test_terms_drop_stopwords_and_lowercase() -> None:
    got = terms("The board of eBay rejected an offer from Carl Icahn and says it will wait")
    assert got == ["board", "ebay", "rejected", "offer", "carl", "icahn", "wait"]
    for stop in ("the", "of", "an", "from", "and", "says", "it", "will"):
        assert stop not in got


def test_terms_drop_possessive_s_and_keep_numbers() -> None:
    got = terms("Icahn's bid for eBay's unit: 4.5 billion, 2015")
    assert got == ["icahn", "bid", "ebay", "unit", "4.5", "billion", "2015"]
    assert not any(t.endswith("'s") for t in got)


def test_terms_drop_one_character_tokens_and_trim_punctuation() -> None:
    assert terms("A b c -- 'quoted' end.") == ["quoted", "end"]
    assert terms("") == []


# --- entities --------------------------------------------------------------------------


NORMAL = (
    "Carl Icahn said on Monday that PayPal should be spun off. The board met in March "
    "and rejected the plan, citing a 3,000 job cut and 4.5 billion in debt."
)


def test_entities_find_names_and_numbers_in_a_normal_sentence() -> None:
    got = entities("", NORMAL)
    assert {"carl", "icahn", "paypal"} <= got
    assert {"#3000", "#4.5"} <= got  # numbers carry '#', thousands separators dropped
    assert got == {"carl", "icahn", "paypal", "#3000", "#4.5"}


def test_entities_ignore_weekdays_months_and_sentence_start_words() -> None:
    got = entities("", NORMAL)
    for word in ("monday", "march", "the"):
        assert word not in got
    text = "After the storm, When officials met on Tuesday in May, Santiago was calm."
    assert entities("", text) == {"santiago"}


def test_entities_of_a_title_case_headline_are_numbers_only() -> None:
    title = "Chile Earthquake Kills 300 People In Concepcion"
    assert is_title_case(title)
    assert entities(title, "") == {"#300"}
    # The same words in sentence case name the places.
    sentence = "Chile earthquake kills 300 people in Concepcion"
    assert not is_title_case(sentence)
    assert entities(sentence, "") == {"chile", "concepcion", "#300"}


def test_entities_combine_title_and_body_and_strip_possessives() -> None:
    got = entities("Icahn Urges Sale Of Unit In 2015", "Icahn's letter named PayPal's board.")
    assert got == {"#2015", "icahn", "paypal"}


def test_is_title_case() -> None:
    assert is_title_case("Icahn Urges eBay To Spin Off PayPal")
    assert is_title_case("The Big Red Dog Of The Town")  # function words do not count
    assert not is_title_case("Icahn urges eBay to spin off PayPal")
    assert not is_title_case("Big Red")  # fewer than three content words
    assert not is_title_case("")


# --- document frequencies --------------------------------------------------------------


def test_idf_decreases_as_a_key_gets_more_common() -> None:
    df = DocumentFrequencies()
    for _ in range(10):
        df.add(["filler"])
    idfs = []
    for n in range(4):
        idfs.append(df.idf("quake"))
        if n < 3:
            df.add(["quake", "filler"])
    assert idfs == sorted(idfs, reverse=True)
    assert len(set(idfs)) == len(idfs)  # strictly decreasing
    # Unseen keys get the highest idf; a key in every document still has a positive idf.
    assert df.idf("never-seen") > df.idf("quake") > df.idf("filler") > 0
    assert df.documents == 13
    assert df.counts["filler"] == 13
    assert df.idf("filler") == pytest.approx(math.log(14 / 13.5))


def test_add_counts_a_key_once_per_document() -> None:
    df = DocumentFrequencies()
    df.add(["quake", "quake", "chile"])
    assert df.documents == 1
    assert df.counts == {"quake": 1, "chile": 1}


def test_remove_restores_the_previous_idf_and_deletes_zero_counts() -> None:
    df = DocumentFrequencies()
    df.add(["quake", "chile"])
    df.add(["quake"])
    before = {k: df.idf(k) for k in ("quake", "chile", "haiti")}
    df.add(["quake", "haiti"])
    assert df.idf("quake") != before["quake"]
    df.remove(["haiti", "quake"])
    assert {k: df.idf(k) for k in before} == pytest.approx(before)
    assert "haiti" not in df.counts
    assert df.documents == 2
    df.remove(["quake", "chile"])
    df.remove(["quake"])
    assert df.documents == 0
    assert dict(df.counts) == {}


# --- term vectors ----------------------------------------------------------------------


def _frequencies(*docs: str) -> DocumentFrequencies:
    df = DocumentFrequencies()
    for doc in docs:
        df.add(terms(doc))
    return df


def test_term_vector_is_unit_length() -> None:
    df = _frequencies("flood north river", "flood rescue boats", "election vote")
    vec = term_vector("Flood in the north", "Rescue boats reached the river valley.", df)
    assert set(vec) == {"flood", "north", "rescue", "boats", "reached", "river", "valley"}
    assert math.sqrt(sum(w * w for w in vec.values())) == pytest.approx(1.0)
    assert all(w > 0 for w in vec.values())
    assert term_vector("", "", df) == {}


def test_term_vector_weights_a_title_term_above_the_same_term_in_the_body() -> None:
    df = _frequencies("flood rain", "flood rain")  # equal idf for both terms
    assert df.idf("flood") == df.idf("rain")
    in_title = term_vector("Flood", "rain", df)
    in_body = term_vector("Rain", "flood", df)
    assert in_title["flood"] > in_title["rain"]
    assert in_title["flood"] > in_body["flood"]
    # The title counts TITLE_WEIGHT times: sublinear tf 1 + ln(2) against 1 for the body.
    ratio = (1 + math.log(TITLE_WEIGHT)) / 1.0
    assert in_title["flood"] / in_title["rain"] == pytest.approx(ratio)


def test_term_vector_reads_only_the_lead_of_the_body() -> None:
    df = DocumentFrequencies()
    body = "flood " + "x" * TERM_BODY_CHARS + " tsunami"
    vec = term_vector("Report", body, df)
    assert "flood" in vec
    assert "tsunami" not in vec


def test_term_vector_weights_rare_terms_above_common_ones() -> None:
    df = _frequencies("flood", "flood", "flood", "flood dam")
    vec = term_vector("", "flood dam", df)
    assert vec["dam"] > vec["flood"]


def test_text_evidence_survives_the_embedded_record() -> None:
    """What the embed stage reads travels through the JSON record unchanged; a record
    without it (written before the field existed) asks the cluster stage to read the text."""
    article = Article(
        id="a1",
        title="Magnitude 8.8 earthquake strikes central Chile",
        text="The quake hit Concepcion at 3:34 a.m.; 700 people died, officials in Santiago said.",
        source="wire",
        url=None,
        published_at=None,
    )
    evidence = TextEvidence.of(article.title, article.text)
    assert evidence.term_counts["chile"] == 2  # the title counts twice
    assert {"#8.8", "concepcion", "santiago", "#700"} <= evidence.entities
    record = EmbeddedArticle.build(article, "AAAA", 1.0, 2.0, evidence)
    assert EmbeddedArticle.loads(record.dumps()).text_evidence() == evidence
    assert evidence.content_key == article.content_key
    bare = EmbeddedArticle.build(article, "AAAA", 1.0, 2.0)
    assert EmbeddedArticle.loads(bare.dumps()).text_evidence() is None
    # written by the version that sent term counts and names but no content key yet
    older = record.asdict() | {"content_key": None}
    assert EmbeddedArticle(**older).text_evidence() is None
