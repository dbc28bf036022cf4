"""The benchmark's pure logic: a deterministic corpus, ratios, targets and the table."""

import math

from benchmarks.corpus import (
    SIZES,
    CorpusSize,
    evenly_spaced,
    generate,
    load_corpus,
    short_texts,
)
from benchmarks.report import (
    Row,
    assemble,
    batching_gains,
    interval_union,
    percentile,
    render,
    targets,
    with_ratios,
)

TINY = CorpusSize(
    documents=3,
    min_words=200,
    max_words=300,
    short_texts=10,
    latency_documents=1,
    sweep_chunks=4,
)


def test_the_generated_corpus_is_the_same_on_every_call() -> None:
    assert generate(TINY) == generate(TINY)
    assert generate(TINY, seed=1) != generate(TINY, seed=2)
    names = [name for name, _ in generate(SIZES["quick"])]
    assert len(names) == len(set(names)) == SIZES["quick"].documents


def test_a_document_variant_has_other_bytes_but_the_same_text() -> None:
    document = load_corpus(TINY, with_samples=False)[0]
    assert document.variant(1) != document.variant(2) != document.data
    assert document.variant(1).split() == document.data.split()


def test_short_texts_and_samples_have_the_requested_sizes() -> None:
    documents = load_corpus(TINY, with_samples=False)
    texts = short_texts(documents, 25)
    assert len(texts) == 25
    assert all(len(text.split()) <= 12 for text in texts)
    assert evenly_spaced(list("abcdefgh"), 4) == ["a", "c", "e", "g"]
    assert evenly_spaced(list("ab"), 4) == ["a", "b"]


def _rows() -> list[Row]:
    return [
        Row("ceiling", "1", 20.0, "chunks/s", baseline="ceiling"),
        Row("serve_batched", "2", 19.0, "chunks/s", baseline="ceiling"),
        Row("serve_unbatched", "3", 16.0, "chunks/s", baseline="ceiling"),
        Row("ceiling_short", "1s", 400.0, "chunks/s", baseline="ceiling_short"),
        Row("serve_batched_short", "2s", 300.0, "chunks/s", baseline="ceiling_short"),
        Row("serve_unbatched_short", "3s", 100.0, "chunks/s", "ceiling_short"),
        Row("ai_path", "4", 16.0, "chunks/s", baseline="ceiling"),
        Row("seed_design", "5", 12.0, "chunks/s", baseline="ceiling"),
        Row("pipeline_off", "6", 14.0, "chunks/s", baseline="ceiling"),
        Row("latency", "7", 2.0, "s", ratio=0.4),
    ]


def test_ratios_are_taken_to_each_rows_own_ceiling() -> None:
    ratios = {row.key: row.ratio for row in with_ratios(_rows())}
    assert ratios["ceiling"] == 1.0
    assert ratios["serve_batched"] == 0.95
    assert ratios["serve_batched_short"] == 0.75
    assert ratios["latency"] == 0.4


def test_targets_and_batching_gains() -> None:
    found = {target.name: target for target in targets(_rows())}
    assert found["2/1 serve batched / ceiling"].met
    assert not found["4/1 AI path / ceiling"].met  # 0.80 < 0.85
    assert found["4/5 AI path / seed design"].value == 16 / 12
    assert found["6/1 pipeline, summaries off / ceiling"].value == 0.7
    short = found["2/3 batched / unbatched, short chunks, 64 concurrent"]
    assert short.value == 3.0 and short.met
    assert batching_gains(_rows()) == {"chunks": 19 / 16, "short chunks": 3.0}


def test_a_target_whose_rows_were_skipped_is_left_out() -> None:
    rows = [row for row in _rows() if row.key != "seed_design"]
    assert all("seed" not in target.name for target in targets(rows))


def test_percentiles_and_busy_time() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 95) == 1.95
    assert math.isnan(percentile([], 50))
    assert interval_union([(0, 2), (1, 3), (5, 6)]) == 4
    assert interval_union([(0, 10), (2, 3)]) == 10
    assert interval_union([]) == 0


def test_the_report_renders_every_row_and_target() -> None:
    report = assemble(
        _rows(),
        machine={"summary": "2 x test cpu"},
        corpus={"summary": "tiny corpus"},
        memory={"temporal": {"idle": 100 * 2**20, "load": 120 * 2**20}},
        cold_start_s=42.0,
        wall_s=600.0,
    )
    text = render(report)
    assert "2 x test cpu" in text and "tiny corpus" in text
    assert "0.95" in text and "MISS" in text and "42.0 s" in text
    assert len(report["targets"]) == 5
