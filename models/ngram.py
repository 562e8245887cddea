"""The yardstick for the word language models: an interpolated Kneser-Ney trigram model.

Counts, not learning: how often each word followed each pair of words in the training text, with
Kneser-Ney smoothing (Kneser & Ney 1995; the interpolated form of Chen & Goodman 1998) so that
unseen pairs and words still get some probability. The lower orders use *continuation* counts:
a word's unigram weight is the number of different words it follows, not how often it occurs
("Francisco" is frequent but only ever after "San"). One absolute discount per order,
D = n1 / (n1 + 2 n2) from the counts of counts.

It reads exactly the token ids the neural models read, <unk> and <eos> included, and scores every
token after the first, as `models.word_lstm.perplexity` does, so the perplexities compare directly.
"""

import math
from collections import Counter

import torch


def _discount(counts: Counter) -> float:
    counts_of_counts = Counter(counts.values())
    n1, n2 = counts_of_counts.get(1, 0), counts_of_counts.get(2, 0)
    return n1 / (n1 + 2 * n2) if n1 + n2 else 0.5


class KneserNeyTrigram:
    def __init__(self, train_ids: torch.Tensor, vocab_size: int):
        ids = train_ids.tolist()
        self.vocab_size = vocab_size
        self.trigrams = Counter(zip(ids, ids[1:], ids[2:], strict=False))
        bigram_types = Counter(zip(ids, ids[1:], strict=False))
        # Continuation counts: N1+(. v w) = how many different words precede the bigram (v, w).
        self.bigram_continuation = Counter((v, w) for (_, v, w) in self.trigrams)
        self.unigram_continuation = Counter(w for (_, w) in bigram_types)
        self.d3, self.d2, self.d1 = _discount(self.trigrams), _discount(self.bigram_continuation), _discount(self.unigram_continuation)
        # Per context: the total count (or continuation count) and how many different words follow it.
        self.context_total: Counter = Counter()
        self.context_types: Counter = Counter()
        for (u, v, _), c in self.trigrams.items():
            self.context_total[(u, v)] += c
            self.context_types[(u, v)] += 1
        self.middle_total: Counter = Counter()
        self.middle_types: Counter = Counter()
        for (v, _), c in self.bigram_continuation.items():
            self.middle_total[v] += c
            self.middle_types[v] += 1
        self.unigram_total = sum(self.unigram_continuation.values())
        self.unigram_types = len(self.unigram_continuation)

    def p_unigram(self, w: int) -> float:
        """Continuation unigram, interpolated with the uniform distribution (so no word gets 0)."""
        seen = max(self.unigram_continuation.get(w, 0) - self.d1, 0) / self.unigram_total
        return seen + self.d1 * self.unigram_types / self.unigram_total / self.vocab_size

    def p_bigram(self, v: int, w: int) -> float:
        total = self.middle_total.get(v, 0)
        if total == 0:
            return self.p_unigram(w)
        seen = max(self.bigram_continuation.get((v, w), 0) - self.d2, 0) / total
        return seen + self.d2 * self.middle_types[v] / total * self.p_unigram(w)

    def p_trigram(self, u: int, v: int, w: int) -> float:
        total = self.context_total.get((u, v), 0)
        if total == 0:
            return self.p_bigram(v, w)
        seen = max(self.trigrams.get((u, v, w), 0) - self.d3, 0) / total
        return seen + self.d3 * self.context_types[(u, v)] / total * self.p_bigram(v, w)

    def perplexity(self, ids: torch.Tensor) -> float:
        """exp(mean -log p) over ids[1:]; the second token is scored from one word of context."""
        ids = ids.tolist()
        log_prob = math.log(self.p_bigram(ids[0], ids[1]))
        for u, v, w in zip(ids, ids[1:], ids[2:], strict=False):
            log_prob += math.log(self.p_trigram(u, v, w))
        return math.exp(-log_prob / (len(ids) - 1))
