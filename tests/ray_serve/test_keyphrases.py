"""Key-phrase candidates and their ranking by maximal marginal relevance."""

import numpy as np

from ray_serve.keyphrases import candidates, mentions, rank


def test_candidates_skip_stop_words_and_prefer_repeated_phrases() -> None:
    text = (
        "The vector index answers nearest neighbour queries. A vector index is built "
        "once and the vector index is queried often. The weather was fine."
    )
    found = candidates(text)
    assert found[0] == "vector index"
    assert all(not phrase.startswith("the ") for phrase in found)
    assert "the" not in found


def test_rank_picks_relevant_then_diverse_phrases() -> None:
    document = np.array([1.0, 0.0, 0.0])
    phrases = ["close", "close twin", "other angle"]
    vectors = np.array([[0.99, 0.14, 0.0], [0.98, 0.2, 0.0], [0.7, 0.0, 0.714]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ranked = rank(phrases, vectors, document, top_n=2, diversity=0.7)
    assert [phrase for phrase, _ in ranked] == ["close", "other angle"]
    assert ranked[0][1] > 0.9


def test_mentions_match_whole_words_case_insensitively() -> None:
    chunks = ["Vector search is fast.", "vectors everywhere", "A VECTOR here"]
    assert mentions("vector", chunks) == [0, 2]
