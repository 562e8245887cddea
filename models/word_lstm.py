"""Word-level language models: the talk's recurrent network (an LSTM), and the sampling that both
it and the small transformer (`checkpoints/word-gpt`, a plain `GPT2LMHeadModel`) write with.

A language model reads words one at a time and, after each, gives a probability for every word
that could come next. The LSTM carries what it has read in a hidden state that it feeds back into
itself; the transformer instead looks back at every earlier word with attention. Writing is just
sampling: pick a next word from those probabilities, append it, repeat.

No `from __future__ import annotations` here: PyTorchModelHubMixin reads the config's type
annotation at run time to rebuild the dataclass from config.json.
"""

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from data.austen import UNK
from models.ngram import KneserNeyTrigram


@dataclass
class WordLSTMConfig:
    vocab_size: int = 8000
    size: int = 400  # embedding width = hidden width, so the output layer can share the embedding's weights
    layers: int = 2
    dropout: float = 0.4  # on embeddings, between layers and before the output (Zaremba et al. 2014)
    context: int = 35  # words per training sequence (truncated backpropagation through time)


class WordLSTM(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pytorch",
    license="mit",
    tags=["text-generation", "lstm", "model-show"],
    repo_url="https://github.com/model-show/model-show",
):
    def __init__(self, config: WordLSTMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.size)
        self.lstm = nn.LSTM(config.size, config.size, config.layers, dropout=config.dropout, batch_first=True)
        self.drop = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.size, config.vocab_size)
        # Tied weights (Press & Wolf 2017): a word's input vector is also its output vector; fewer
        # parameters and a lower perplexity on small corpora.
        self.output.weight = self.embedding.weight

    def forward(self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """ids (B, T) -> (logits (B, T, vocab), (h, c) each (layers, B, size)).

        Pass the returned state back in to continue the same text (training carries it across
        consecutive chunks; generation carries it from word to word)."""
        x = self.drop(self.embedding(ids))
        out, state = self.lstm(x, state)
        return self.output(self.drop(out)), state


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """(V,) logits -> (V,) probabilities after temperature, top-k and nucleus (top-p) filtering.

    temperature 0 means greedy (all mass on the most likely word); top_k 0 and top_p 1 turn those filters off."""
    logits = logits.float()
    if temperature <= 0:
        probs = torch.zeros_like(logits)
        probs[logits.argmax()] = 1.0
        return probs
    logits = logits / temperature
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # keep the smallest set of words whose probabilities add up to top_p (always at least one)
        before = sorted_probs.cumsum(0) - sorted_probs
        sorted_probs[before >= top_p] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        probs = probs / probs.sum()
    return probs


class NextWord:
    """Step either model one token at a time, keeping its memory between steps.

    For the LSTM the memory is its (h, c) state; for the transformer it is the attention key/value
    cache, trimmed to the model's context window when the text grows past it."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.is_lstm = isinstance(model, WordLSTM)
        self.state = None
        self.window: list[int] = []  # transformer only: the token ids in view
        self.max_context = 0 if self.is_lstm else int(model.config.n_positions)
        self.device = next(model.parameters()).device
        # transformers renamed `past_key_values` to `cache` (5.x); use whichever this version takes.
        self.cache_arg = "cache" if not self.is_lstm and "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def feed(self, ids: list[int]) -> torch.Tensor:
        """Read `ids` (at least one) and return the (vocab,) logits for the word after them."""
        return self.read(ids)[-1]

    @torch.inference_mode()
    def read(self, ids: list[int]) -> torch.Tensor:
        """Read `ids` (at least one): (n, vocab) logits, row i for the word after ids[len(ids) - n + i].

        n is len(ids), except when a long read overflows the transformer's window: then only the
        last half-window of ids is read afresh, and only those get a row."""
        if self.is_lstm:
            logits, self.state = self.model(torch.tensor([ids], device=self.device), self.state)
            return logits[0].float().cpu()
        fresh = len(ids)
        if len(self.window) + len(ids) > self.max_context:
            # Past the window: start a fresh cache over the most recent half-window of tokens.
            self.window = (self.window + ids)[-self.max_context // 2 :]
            self.state = None
            fresh = min(fresh, len(self.window))
            ids = self.window
        else:
            self.window = self.window + ids
        out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, **{self.cache_arg: self.state})
        self.state = out[self.cache_arg]
        return out.logits[0, -fresh:].float().cpu()


def surprise_bits(logits: torch.Tensor, next_ids: torch.Tensor) -> torch.Tensor:
    """(n, vocab) logits and the (n,) words that did come next -> (n,) surprise, -log2 p(word), in bits.

    1 bit: the model gave the word a 1-in-2 chance; 10 bits: 1 in 1,024. The mean over a text is
    log2 of the model's perplexity on it."""
    log_p = F.log_softmax(logits.float(), dim=-1).gather(-1, next_ids[:, None])[:, 0]
    return -log_p / torch.log(torch.tensor(2.0))


@torch.inference_mode()
def attention_weights(model: nn.Module, ids: list[int]) -> torch.Tensor:
    """A transformer (loaded with eager attention) reading `ids` -> (layers, heads, T, T) attention weights.

    Row t of a head: how much the word at t looked at each word 0..t (the rows sum to 1; later words
    get 0, since a causal model cannot look ahead)."""
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([ids], device=device), output_attentions=True)
    if not out.attentions:
        raise ValueError("This model does not return attention weights: load it with attn_implementation='eager'.")
    return torch.stack([a[0] for a in out.attentions]).float().cpu()


def perplexity(model: nn.Module, ids: torch.Tensor, context: int, batch_size: int = 16) -> float:
    """exp(mean next-token cross-entropy) over a whole (N,) token stream, every token scored once.

    LSTM: the stream is cut into `batch_size` parallel rows read left to right in chunks of
    `context` words, the state carried across chunks (as in training). Transformer: windows of
    `context` tokens that overlap by half; each token is scored in the window where it has at least
    half a window of history (the first window scores all of its tokens). Same tokens, same <unk>
    handling for both models and for the n-gram baseline."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.inference_mode():
        if isinstance(model, WordLSTM):
            rows = (len(ids) - 1) // batch_size
            inputs = ids[: rows * batch_size].view(batch_size, rows)
            targets = ids[1 : rows * batch_size + 1].view(batch_size, rows)
            state = None
            for start in range(0, rows, context):
                logits, state = model(inputs[:, start : start + context].to(device), state)
                y = targets[:, start : start + context].to(device)
                total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
                count += y.numel()
        else:
            stride = context // 2
            starts = list(range(0, max(len(ids) - context, 0) + 1, stride))
            if starts[-1] + context < len(ids):
                starts.append(len(ids) - context)  # the tail, so every token is scored
            scored_until = 0  # tokens ids[1 : scored_until + 1] already have a score
            for first in range(0, len(starts), batch_size):
                batch = starts[first : first + batch_size]
                x = torch.stack([ids[s : s + context] for s in batch]).to(device)
                logits = model(input_ids=x).logits.float()  # (B, context, vocab)
                for row, s in enumerate(batch):
                    # position p predicts ids[s + p + 1]; score only targets not scored before
                    from_p = max(scored_until - s, 0)
                    to_p = min(context, len(ids) - 1 - s)
                    if to_p <= from_p:
                        continue
                    y = ids[s + from_p + 1 : s + to_p + 1].to(device)
                    total += F.cross_entropy(logits[row, from_p:to_p], y, reduction="sum").item()
                    count += len(y)
                    scored_until = s + to_p
    return float(torch.exp(torch.tensor(total / count)))


# The metrics both word models report (train_word_lstm and train_word_gpt): same tokens, so they compare.
METRIC_NOTES = {
    "test_ppl": "perplexity on the test chapters: exp of the mean next-word cross-entropy, <eos> and <unk> included",
    "val_ppl": "best validation perplexity (chooses the checkpoint)",
    "vocab_size": "words in the vocabulary, <unk> and <eos> included",
    "train_tokens": "tokens in the training split",
    "test_tokens": "tokens in the test split",
    "test_unk_rate": "share of test tokens that are <unk>",
    "test_ppl_trigram": "the yardstick: an interpolated Kneser-Ney trigram (models/ngram.py) counted on the same training tokens",
}


def text_metrics(test_ppl: float, best_val: float, tokenizer, train_ids: torch.Tensor, test_ids: torch.Tensor) -> dict:
    trigram = KneserNeyTrigram(train_ids, tokenizer.get_vocab_size()).perplexity(test_ids)
    return {
        "test_ppl": round(test_ppl, 2),
        "val_ppl": round(best_val, 2),
        "vocab_size": tokenizer.get_vocab_size(),
        "train_tokens": len(train_ids),
        "test_tokens": len(test_ids),
        "test_unk_rate": round(float((test_ids == tokenizer.token_to_id(UNK)).float().mean()), 4),
        "test_ppl_trigram": round(trigram, 2),
    }
