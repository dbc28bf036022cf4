"""Key phrases by embedding similarity: candidate n-grams scored against the document.

Candidates are frequent 1-3 word phrases without stop words.
Each is embedded by the same model as the chunks; a phrase scores by its cosine
similarity to the document (the mean of its chunk embeddings), and maximal marginal
relevance keeps the chosen phrases from repeating each other.
"""

import re
from collections import Counter

import numpy as np

_STOP_WORD_TEXT = """
    a about above after again against all also am an and any are as at be because
    been before being below between both but by can could did do does doing down
    during each either else etc even ever every few for from further had has have
    having he her here hers herself him himself his how however i if in into is it
    its itself just like may me might more most much must my myself no nor not now
    of off often on once one only or other our ours ourselves out over own per
    rather same shall she should since so some such than that the their theirs them
    themselves then there these they this those through thus to too under until up
    upon us use used uses using very via was we were what when where whether which
    while who whom whose why will with within without would yet you your yours
    yourself yourselves new many first second two three way ways
"""
STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())
_TOKEN = re.compile(r"[a-z][a-z0-9]*(?:[-'][a-z0-9]+)*")


def candidates(text: str, limit: int = 48) -> list[str]:
    counts: Counter[str] = Counter()
    for sentence in re.split(r"[.!?;:\n()\[\]{}\"“”]+", text.lower()):
        tokens = _TOKEN.findall(sentence)
        for size in (1, 2, 3):
            for first in range(len(tokens) - size + 1):
                gram = tokens[first : first + size]
                if any(token in STOP_WORDS for token in gram):
                    continue
                if size == 1 and len(gram[0]) < 4:
                    continue
                counts[" ".join(gram)] += 1
    # Longer phrases are rarer but say more: weigh them up against single words.
    ranked = sorted(
        counts.items(),
        key=lambda item: (-item[1] * (1 + 0.5 * item[0].count(" ")), item[0]),
    )
    return [phrase for phrase, count in ranked if count >= 1][:limit]


def rank(
    phrases: list[str],
    phrase_vectors: np.ndarray,
    document_vector: np.ndarray,
    top_n: int = 8,
    diversity: float = 0.4,
) -> list[tuple[str, float]]:
    """Pick `top_n` phrases by maximal marginal relevance; vectors are L2-normalised."""
    if not phrases:
        return []
    relevance = phrase_vectors @ document_vector
    similarity = phrase_vectors @ phrase_vectors.T
    chosen = [int(np.argmax(relevance))]
    while len(chosen) < min(top_n, len(phrases)):
        rest = [i for i in range(len(phrases)) if i not in chosen]
        redundancy = similarity[np.ix_(rest, chosen)].max(axis=1)
        scores = (1 - diversity) * relevance[rest] - diversity * redundancy
        chosen.append(rest[int(np.argmax(scores))])
    return [(phrases[i], round(float(relevance[i]), 4)) for i in chosen]


def mentions(phrase: str, chunk_texts: list[str]) -> list[int]:
    pattern = re.compile(r"\b" + re.escape(phrase) + r"\b", re.I)
    return [index for index, text in enumerate(chunk_texts) if pattern.search(text)]
