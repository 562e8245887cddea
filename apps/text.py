"""Text tab: two word-level language models write on from your prompt, word by word.

Trace: prompt -> the shared word tokenizer (checkpoints/word-lstm/tokenizer.json) -> token ids ->
`models.word_lstm.NextWord` steps `WordLSTM` or the `GPT2LMHeadModel` -> `filter_logits`
(temperature, top-k, top-p) -> a seeded draw -> the next word, streamed to the page, each word
coloured by `surprise_bits`. `attention` draws `attention_weights` of the GPT for one word.
"""

import functools
import html
import json
import math

import gradio as gr
import pandas as pd
import torch

from apps.common import (
    HEAVY_LANE,
    LIGHT_LANE,
    check_number,
    lease_number,
    link_choice,
    link_number,
    link_text,
    load_model,
    on_gpu,
    on_link,
    read_link,
    share_link,
)
from data.austen import EOS, SPACE, UNK
from models import hub
from models.word_lstm import NextWord, WordLSTM, attention_weights, filter_logits, surprise_bits

TITLE = "Text"
MODELS = {"LSTM (recurrent network)": "word-lstm", "GPT (small transformer)": "word-gpt"}
MAX_WORDS = 300
MAX_PROMPT_CHARS = 4000
INTRO = """
### A language model guesses the next word, again and again
Both models here read text one word at a time and, after each word, give every word they know a probability of coming next.
They learned those probabilities from about 700,000 words of Jane Austen's six novels, by predicting each next word and being
corrected. The **LSTM** is a recurrent network: it carries what it has read in a hidden state that it feeds back into itself.
The **GPT** is a small transformer: every word looks back at all the earlier words with attention. To *write*, a model samples
a word from its probabilities, appends it, and repeats. Lower temperature means safer, duller picks; top-k and top-p cut off
the unlikely tail. The same seed and settings always write the same text.

The chart on the right shows both: what the model thinks comes next, and what it actually draws from after your settings.
The written text is coloured by how **surprised** the model was by each word; click a word to see where the GPT's
attention went while it read it.
"""
# Surprise, -log2 p, in bits: (upper bound, legend name, colour). 2 bits = a 1-in-4 word, 12 bits = 1 in 4,096.
SURPRISE_BINS = (
    (2.0, "under 2 bits (likelier than 1 in 4)", "#c7e9c0"),
    (5.0, "2-5 bits", "#fff3b0"),
    (8.0, "5-8 bits", "#fdbf6f"),
    (12.0, "8-12 bits", "#f4777f"),
    (math.inf, "over 12 bits (rarer than 1 in 4,096)", "#b75fc4"),
)
NOT_SCORED = "not scored (read before the GPT's window)"
SURPRISE_COLOURS = {name: colour for _, name, colour in SURPRISE_BINS} | {NOT_SCORED: "#e0e0e0"}
ATTENTION_COLUMNS = 16  # earlier words drawn in the attention table; older ones are summed into one column


def model(name: str) -> torch.nn.Module:
    return load_model(hub.load_causal_lm, name) if name == "word-gpt" else load_model(hub.load, WordLSTM, name)


@functools.cache
def tokenizer():
    """The word tokenizer both models share (the LSTM's copy; the GPT folder holds the same file)."""
    from tokenizers import Tokenizer

    path = hub.checkpoint_file("word-lstm", "tokenizer.json") or hub.checkpoint_file("word-gpt", "tokenizer.json")
    if path is None:
        raise gr.Error("The word tokenizer is missing: train `python -m training.train_word_lstm` first.", title="Model not available")
    return Tokenizer.from_file(str(path))


def piece(token: str) -> str:
    """How one token reads in running text: "▁said" -> " said", "<eos>" -> a paragraph break."""
    if token == EOS:
        return "\n\n"
    if token == UNK:
        return f" {UNK}"
    return token.replace(SPACE, " ")


def label(token: str) -> str:
    """How one token is named in the "what comes next?" chart (names must differ: they are the chart's keys)."""
    if token == EOS:
        return "(end of paragraph)"
    if token == UNK:
        return "(a rare word: <unk>)"
    if token.startswith(SPACE):
        rest = token[1:]
        return rest if rest[:1].isalnum() else f"{rest} (after a space)"  # '▁"' opens a quote after a space
    return f"…{token}" if token[:1].isalnum() else token  # "…s" is glued to the word before it; "," is just ","


def parse_settings(choice, prompt, temperature, top_k, top_p, words, seed) -> tuple[str, str, float, int, float, int, int, list[str]]:
    """Check every setting; returns them cleaned, plus notes for the reader (caps that were applied)."""
    if choice not in MODELS:
        raise gr.Error(f"Model must be one of: {', '.join(MODELS)}.", title="Please check the input")
    prompt = "" if prompt is None else str(prompt)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise gr.Error(
            f"The prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}. Please shorten it.",
            title="Please check the input",
        )
    temperature = check_number(temperature, "Temperature", 0, 2)
    top_k = check_number(top_k, "Top-k", 0, 1000, integer=True)
    top_p = check_number(top_p, "Top-p", 0.01, 1)
    seed = check_number(seed, "Seed", 0, 2**31 - 1, integer=True)
    notes = []
    try:
        asked = float(words)
    except (TypeError, ValueError):
        raise gr.Error(f"Number of words must be a number from 1 to {MAX_WORDS}.", title="Please check the input") from None
    if asked != asked or asked < 1:
        notes.append(f"You asked for {words} words; it writes at least 1.")
        words = 1
    elif asked > MAX_WORDS:
        notes.append(f"You asked for {asked:,.0f} words; the limit is {MAX_WORDS}, so it writes {MAX_WORDS}.")
        words = MAX_WORDS
    else:
        words = int(asked)
    return MODELS[choice], prompt, temperature, top_k, top_p, words, seed, notes


def prompt_ids(prompt: str, notes: list[str]) -> list[int]:
    """Token ids the model reads first: always a paragraph boundary, then the prompt's words."""
    tok = tokenizer()
    eos = tok.token_to_id(EOS)
    ids = tok.encode(prompt.strip()).ids if prompt.strip() else []
    if not ids:
        notes.append("The prompt is empty, so the model starts from a paragraph boundary.")
    elif all(i == tok.token_to_id(UNK) for i in ids):
        notes.append(
            f"None of the prompt's words are among the {tok.get_vocab_size():,} the models know (they learned only Austen's words), "
            f"so the model reads {len(ids)} × `{UNK}`: expect it to write as if from scratch."
        )
    return [eos, *ids]


def top_words(probs: torch.Tensor, k: int = 10) -> dict[str, float]:
    """The k most probable next words of a (vocab,) distribution, leaving out words it gives 0."""
    values, indices = probs.float().topk(k)
    tok = tokenizer()
    return {label(tok.id_to_token(int(i))): float(v) for v, i in zip(values, indices, strict=True) if v > 0}


def next_word_charts(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> tuple[dict, dict, str]:
    """(vocab,) logits -> (the model's own top 10, the top 10 of what a draw really picks from, a sentence on the cut)."""
    raw = logits.float().softmax(-1)
    drawn = filter_logits(logits, temperature, top_k, top_p)
    kept = int((drawn > 0).sum())
    raw_chart, drawn_chart = top_words(raw), top_words(drawn)
    best = next(iter(raw_chart))
    sentence = (
        f"With temperature {temperature:g}, top-k {top_k or 'off'} and top-p {top_p:g}, a draw picks from **{kept:,}** of the "
        f"{len(raw):,} words; the likeliest, “{best}”, has {drawn_chart.get(best, 0.0):.1%} of the chance instead of {raw_chart[best]:.1%}."
    )
    return raw_chart, drawn_chart, sentence


def surprise_name(bits: float | None) -> str:
    """Which legend entry a word's surprise falls in."""
    if bits is None:
        return NOT_SCORED
    return next(name for upper, name, _ in SURPRISE_BINS if bits < upper)


def surprise_summary(bits: list[float], what: str) -> str:
    if not bits:
        return ""
    mean = sum(bits) / len(bits)
    return f"Mean surprise of {what}: **{mean:.2f} bits** a word, a perplexity of 2^{mean:.2f} = {2**mean:,.1f}."


@on_gpu
def next_words(choice="LSTM (recurrent network)", prompt="", temperature=0.8, top_k=40, top_p=0.95) -> tuple[dict, dict, str]:
    """What a Jane Austen language model would write next after a prompt, before and after the sampling settings.

    Args:
        choice: "LSTM (recurrent network)" or "GPT (small transformer)".
        prompt: the text so far (up to 4,000 characters; empty = a new paragraph).
        temperature: 0 to 2; 0 always takes the likeliest word.
        top_k: 0 to 1000; keep only the k likeliest words (0 = off).
        top_p: 0.01 to 1; keep the likeliest words that together hold this much chance (1 = off).
    Returns:
        The model's own 10 likeliest next words, the 10 likeliest of what a draw really picks from, and notes."""
    name, prompt, temperature, top_k, top_p, *_, notes = parse_settings(choice, prompt, temperature, top_k, top_p, words=1, seed=0)
    logits = NextWord(model(name)).feed(prompt_ids(prompt, notes))
    raw, drawn, sentence = next_word_charts(logits, temperature, top_k, top_p)
    return raw, drawn, "\n\n".join([*notes, sentence])


def prompt_surprise(ids: list[int], rows: torch.Tensor) -> list[float | None]:
    """Surprise of each prompt word ids[1:], from the (n, vocab) rows NextWord.read returned for ids; None where
    the transformer had to drop the word's predecessor from its window."""
    first_row = len(ids) - len(rows)  # rows[i] predicts ids[first_row + i + 1]
    bits: list[float | None] = [None] * (len(ids) - 1)
    scored = range(max(first_row, 0), len(ids) - 1)
    if len(scored):
        targets = torch.tensor([ids[j + 1] for j in scored])
        values = surprise_bits(rows[scored.start - first_row : scored.stop - first_row], targets)
        for j, b in zip(scored, values.tolist(), strict=True):
            bits[j] = b
    return bits


def text_lease_seconds(choice="LSTM (recurrent network)", prompt="", temperature=0.8, top_k=40, top_p=0.95, words=60, seed=0) -> int:
    """ZeroGPU lease for one piece of writing: one forward pass per word (0.05 s with the stream's overhead), plus 10 s."""
    return int(10 + 0.05 * lease_number(words, 60, 1, MAX_WORDS))


@on_gpu(duration=text_lease_seconds)
def generate_text(
    choice="LSTM (recurrent network)",
    prompt="It is a truth universally acknowledged",
    temperature=0.8,
    top_k=40,
    top_p=0.95,
    words=60,
    seed=0,
):
    """Write on from a prompt like Jane Austen, word by word, with an LSTM or a small GPT.

    Args:
        choice: "LSTM (recurrent network)" or "GPT (small transformer)".
        prompt: the text to continue (up to 4,000 characters; empty = a new paragraph).
        temperature: 0 to 2; lower is safer and duller, 0 always takes the likeliest word.
        top_k: 0 to 1000; draw only among the k likeliest words (0 = off).
        top_p: 0.01 to 1; draw only among the likeliest words holding this much chance (1 = off).
        words: how many words to write, 1 to 300.
        seed: random seed, 0 to 2147483647; the same seed and settings write the same text.
    Returns:
        Streams (text so far, every word with its surprise class in bits, the 10 likeliest next words, what a draw picks from, notes)."""
    for text, spans, raw, drawn, note, _ in writing(choice, prompt, temperature, top_k, top_p, words, seed):
        yield text, spans, raw, drawn, note


@on_gpu(duration=text_lease_seconds)
def writing(choice, prompt, temperature, top_k, top_p, words, seed):
    """generate_text's steps, each with the token ids read so far ([<eos>, prompt..., written...]) for the page."""
    name, prompt, temperature, top_k, top_p, words, seed, notes = parse_settings(choice, prompt, temperature, top_k, top_p, words, seed)
    ids = prompt_ids(prompt, notes)
    tok = tokenizer()
    stepper = NextWord(model(name))
    generator = torch.Generator().manual_seed(seed)
    rows = stepper.read(ids)
    logits = rows[-1]
    prompt_bits = prompt_surprise(ids, rows)
    spans = [(piece(tok.id_to_token(i)), surprise_name(b)) for i, b in zip(ids[1:], prompt_bits, strict=True)]
    raw, drawn, sentence = next_word_charts(logits, temperature, top_k, top_p)
    scored_prompt = [b for b in prompt_bits if b is not None]
    written_bits: list[float] = []

    def note() -> str:
        parts = [*notes, sentence, surprise_summary(scored_prompt, "the prompt"), surprise_summary(written_bits, "what it wrote")]
        return "\n\n".join(p for p in parts if p)

    text = prompt.rstrip()
    yield text, list(spans), raw, drawn, note(), list(ids)
    for _ in range(words):
        probs = filter_logits(logits, temperature, top_k, top_p)
        word = int(torch.multinomial(probs, 1, generator=generator))
        bits = float(surprise_bits(logits[None], torch.tensor([word]))[0])  # under the model itself: temperature 1, no cut
        written_bits.append(bits)
        token = tok.id_to_token(word)
        text += piece(token)
        spans.append((piece(token), surprise_name(bits)))
        ids.append(word)
        yield (text.lstrip() if not prompt.strip() else text), list(spans), raw, drawn, note(), list(ids)
        logits = stepper.feed([word])


# --- Inside the GPT: where each head looked -------------------------------------------------------


def attention_for(ids: list[int], position: int) -> tuple[str, dict]:
    """ids = [<eos>, words...]; position indexes the words (0 = the first word after <eos>) ->
    (an HTML table of every layer and head's attention from that word back to the words before it, the numbers)."""
    net = model("word-gpt")
    tok = tokenizer()
    end = position + 2  # the window ends with the chosen word
    start = max(0, end - int(net.config.n_positions))
    window = ids[start:end]
    weights = attention_weights(net, window)[:, :, -1, :]  # (layers, heads, len(window)): the chosen word's row
    names = [label(tok.id_to_token(i)) if i != tok.token_to_id(EOS) else "¶ (start)" for i in window]
    chosen = names[-1]
    data = {
        "word": chosen,
        "position": position,
        "words": names,
        "attention": [[[round(float(w), 5) for w in head] for head in layer] for layer in weights],
    }
    shown = min(len(window), ATTENTION_COLUMNS)
    older = len(window) - shown
    header = ["<th>layer, head</th>"] + ([f"<th title='{older} earlier words'>({older} earlier)</th>"] if older else [])
    header += [f"<th>{html.escape(n)}</th>" for n in names[-shown:]]
    body = []
    for layer_index, layer in enumerate(weights, 1):
        for head_index, head in enumerate(layer, 1):
            cells = [float(head[:older].sum())] if older else []
            cells += [float(w) for w in head[-shown:]]
            tds = "".join(
                f"<td title='{w:.3f}' style='background: rgba(214, 39, 40, {w:.3f}); color: {'white' if w > 0.55 else 'inherit'}'>"
                f"{f'{w:.0%}' if w >= 0.05 else ''}</td>"
                for w in cells
            )
            body.append(f"<tr><th>layer {layer_index}, head {head_index}</th>{tds}</tr>")
    table = (
        f"<p>While reading <b>{html.escape(chosen)}</b> (word {position + 1}), each of the GPT's "
        f"{len(weights)} layers x {weights.shape[1]} heads shares out its attention over the words up to it: every row "
        "adds up to 100%. What a head gathers there is what the GPT uses to guess the word after it.</p>"
        "<div style='overflow-x: auto'><table style='border-collapse: collapse; font-size: 0.85em; text-align: center'>"
        f"<tr>{''.join(header)}</tr>{''.join(body)}</table></div>"
    )
    return table, data


@on_gpu
def attention(text_value="It is a truth universally acknowledged", word=0) -> tuple[str, dict]:
    """Where the small GPT's attention went while it read one word of a text, layer by layer and head by head.

    Args:
        text_value: the text (up to 16,000 characters); the GPT reads it, whichever model wrote it.
        word: which word, 1 = the first, 0 = the last.
    Returns:
        An HTML table (a row per layer and head, a column per earlier word) and the weights as {"word", "position", "words", "attention"}."""
    text_value = "" if text_value is None else str(text_value)
    if not text_value.strip():
        raise gr.Error("Write a prompt or some text first; the GPT then reads it word by word.", title="Please check the input")
    if len(text_value) > MAX_PROMPT_CHARS * 4:
        raise gr.Error(f"That text is over {MAX_PROMPT_CHARS * 4:,} characters; please use a shorter one.", title="Please check the input")
    tok = tokenizer()
    ids = [tok.token_to_id(EOS), *tok.encode(text_value.strip()).ids]
    n = len(ids) - 1
    if n == 0:
        raise gr.Error("The tokenizer found no words in that text.", title="Please check the input")
    word = check_number(word, "Word", 0, n, integer=True)
    return attention_for(ids, (word or n) - 1)


def attention_click(ids: list[int] | None, evt: gr.SelectData):
    if not ids or evt is None or not isinstance(evt.index, int) or not 0 <= evt.index < len(ids) - 1:
        return "<p><i>Press Write, then click a word of the coloured text.</i></p>", None
    return attention_for(ids, evt.index)


# --- Inside the LSTM: one memory unit, word by word -----------------------------------------------


def lstm_units(text_value="", unit=-1) -> tuple[list[tuple[str, float]], str]:
    """Read the text with the LSTM and colour each word by one unit of its top layer's hidden state.

    The hidden state is tanh-squashed, so every unit lies in [-1, 1]: red for positive, blue for
    negative. unit -1 picks the unit that changes most over this text."""
    text_value = "" if text_value is None else str(text_value)
    if not text_value.strip():
        raise gr.Error("Write a prompt or some text first; the LSTM then reads it word by word.", title="Please check the input")
    if len(text_value) > MAX_PROMPT_CHARS * 4:
        raise gr.Error(f"That text is over {MAX_PROMPT_CHARS * 4:,} characters; please use a shorter one.", title="Please check the input")
    net = model("word-lstm")
    tok = tokenizer()
    unit = check_number(unit, "Memory unit", -1, net.config.size - 1, integer=True)
    ids = tok.encode(text_value.strip()).ids
    with torch.inference_mode():
        device = next(net.parameters()).device
        embedded = net.embedding(torch.tensor([[tok.token_to_id(EOS), *ids]], device=device))
        hidden, _ = net.lstm(embedded)  # (1, 1 + T, size): the top layer's state after each word
    hidden = hidden[0, 1:].float().cpu()
    # With one word there is no change to measure: rank units by how far from 0 they are instead.
    spread = hidden.std(0) if len(hidden) > 1 else hidden[0].abs()
    busiest = spread.argsort(descending=True)[:8].tolist()
    if unit < 0:
        unit = busiest[0]
    spans = [(piece(tok.id_to_token(i)), round(float(hidden[t, unit]), 3)) for t, i in enumerate(ids)]
    note = (
        f"Unit **{unit}** of {net.config.size} in the LSTM's top layer, after each word (red +1 ... blue -1). "
        f"Units that change most over this text: {', '.join(str(u) for u in busiest)}. Some track quotes, sentence ends or names; "
        "most mix several things, which is what a learned representation usually looks like."
    )
    return spans, note


# --- What the models learned: perplexity curves and the test scores ----------------------------


def perplexity_curves() -> pd.DataFrame | None:
    rows = []
    for name, x_key in (("word-lstm", "epoch"), ("word-gpt", "step")):
        path = hub.checkpoint_file(name, "training_log.json")
        if path is None:
            continue
        log = json.loads(path.read_text())
        last = log[-1][x_key] or 1
        for entry in log:
            progress = entry[x_key] / last  # both runs on one axis: share of their training done
            rows.append({"training done": progress, "perplexity": entry["val_ppl"], "curve": f"{name} validation"})
            rows.append({"training done": progress, "perplexity": entry["train_ppl"], "curve": f"{name} train (dropout on)"})
    return pd.DataFrame(rows) if rows else None


def scores_markdown() -> str:
    lines, trigram = [], None
    for name in MODELS.values():
        path = hub.checkpoint_file(name, "metrics.json")
        if path is not None:
            metrics = json.loads(path.read_text())
            lines.append((name, metrics["test_ppl"]))
            trigram = trigram or metrics.get("test_ppl_trigram")  # counted on the same training tokens by both scripts
    if not lines:
        return ""
    table = "| model | test perplexity |\n| --- | --- |\n" + "\n".join(f"| `{n}` | {p:.1f} |" for n, p in lines)
    if trigram:
        table += f"\n| Kneser-Ney trigram (counts, no learning) | {trigram:.1f} |"
    return (
        "**How well do they predict?** *Perplexity* on chapters neither model ever read: on average the model is as unsure "
        "as if it were picking among that many equally likely words. Lower is better; same words, same vocabulary for all.\n\n" + table
    )


LINK = __name__.rsplit(".", 1)[-1]
LINK_SETTINGS = ["model", "prompt", "temperature", "top_k", "top_p", "words", "seed"]
LINK_READERS = {
    "model": link_choice(MODELS),
    "prompt": link_text(MAX_PROMPT_CHARS),
    "temperature": link_number("Temperature", 0, 2),
    "top_k": link_number("Top-k", 0, 200, integer=True),
    "top_p": link_number("Top-p", 0.05, 1),
    "words": link_number("Words to write", 1, MAX_WORDS, integer=True),
    "seed": link_number("Seed", 0, 2**31 - 1, integer=True),
}


def open_link(choice, prompt, temperature, top_k, top_p, words, seed, request: gr.Request):
    """A page opened on a link to this tab: its model, prompt and settings (then `write_linked` writes, as Write would)."""
    values = [choice, prompt, temperature, top_k, top_p, words, seed]
    link = read_link(request, LINK, LINK_READERS, dict(zip(LINK_SETTINGS, values, strict=True)))
    return (gr.skip(),) * len(LINK_SETTINGS) if link is None else tuple(link[name] for name in LINK_SETTINGS)


def write_linked(choice, prompt, temperature, top_k, top_p, words, seed, request: gr.Request):
    """After open_link: write from the linked settings (cheap, and the same seed writes the same text), else nothing."""
    if request is None or request.query_params.get("tab") != LINK:
        yield (gr.skip(),) * 6  # not one update at all would blank the outputs (a Label then breaks the tab)
        return
    yield from writing(choice, prompt, temperature, top_k, top_p, words, seed)


def build() -> None:
    """The Text tab's components and events, inside the current gr.Tab."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            choice = gr.Radio(list(MODELS), value="LSTM (recurrent network)", label="Model")
            prompt = gr.Textbox(
                value="It is a truth universally acknowledged", label="Prompt", lines=3, max_length=MAX_PROMPT_CHARS, elem_id="text-prompt"
            )
            with gr.Row():
                temperature = gr.Slider(
                    0, 2, value=0.8, step=0.05, label="Temperature (0 = always the likeliest word)", elem_id="text-temperature"
                )
                top_k = gr.Slider(0, 200, value=40, step=1, label="Top-k (0 = off)", elem_id="text-top-k")
            with gr.Row():
                top_p = gr.Slider(0.05, 1, value=0.95, step=0.01, label="Top-p (1 = off)", elem_id="text-top-p")
                words = gr.Number(value=60, precision=0, label=f"Words to write (1-{MAX_WORDS})")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (same seed and settings, same text)")
            with gr.Row():
                write = gr.Button("Write", variant="primary", elem_id="text-write")
                peek = gr.Button("What comes next?")
            share_link(LINK, dict(zip(LINK_SETTINGS, [choice, prompt, temperature, top_k, top_p, words, seed], strict=True)))
        with gr.Column(scale=2):
            output = gr.Textbox(label="Text (prompt, then what the model wrote)", lines=8, elem_id="text-output", buttons=["copy"])
            surprise = gr.HighlightedText(
                label="How surprised the model was by each word: -log2 p (click a word to see the GPT's attention there)",
                color_map=SURPRISE_COLOURS,
                show_legend=True,
                show_inline_category=False,
                elem_id="text-surprise",
            )
            note = gr.Markdown(elem_id="text-note")
            with gr.Row():
                chart = gr.Label(num_top_classes=10, label="What the model thinks comes next (temperature 1, no cut)", elem_id="text-next")
                drawn = gr.Label(
                    num_top_classes=10, label="What a draw really picks from (after temperature, top-k, top-p)", elem_id="text-drawn"
                )
    with gr.Accordion("Inside the GPT: where each layer and head looked", open=True):
        attention_view = gr.HTML(
            "<p><i>Press Write, then click a word of the coloured text.</i></p>", elem_id="text-attention", padding=False
        )
        attention_numbers = gr.JSON(visible=False)
    with gr.Accordion("Inside the LSTM: what one memory unit does as it reads", open=False):
        with gr.Row():
            unit = gr.Number(value=-1, precision=0, label="Memory unit (-1 = the one that changes most)", scale=1)
            look = gr.Button("Show it on the text above", scale=1)
        units_view = gr.HighlightedText(
            label="Each word coloured by the unit's value after reading it", show_legend=False, elem_id="text-units"
        )
        units_note = gr.Markdown()
    with gr.Accordion("How they learned", open=False):
        gr.Markdown(scores_markdown())
        curves = perplexity_curves()
        if curves is not None:
            gr.LinePlot(
                curves, x="training done", y="perplexity", color="curve", title="Perplexity while training (lower is better)", height=320
            )
    ids_state = gr.State(None)
    settings = [choice, prompt, temperature, top_k, top_p, words, seed]
    # preprocess=False: the raw values reach parse_settings, whose messages name the setting and its range.
    write.click(
        writing,
        settings,
        [output, surprise, chart, drawn, note, ids_state],
        api_visibility="private",
        preprocess=False,
        **HEAVY_LANE,
    )
    on_link(open_link, settings, settings).then(
        write_linked, settings, [output, surprise, chart, drawn, note, ids_state], api_visibility="private", preprocess=False, **HEAVY_LANE
    )
    peek.click(next_words, settings[:5], [chart, drawn, note], api_name="next_words", preprocess=False, **LIGHT_LANE)
    # Moving a sampling slider (or choosing the other model) redraws what a draw picks from, without writing.
    gr.on(
        [c.change for c in (choice, temperature, top_k, top_p)],
        next_words,
        settings[:5],
        [chart, drawn, note],
        api_visibility="private",
        preprocess=False,
        trigger_mode="always_last",
        show_progress="hidden",
        **LIGHT_LANE,
    )
    surprise.select(attention_click, ids_state, [attention_view, attention_numbers], api_visibility="private", **LIGHT_LANE)
    # Reads the written text, or the prompt when nothing has been written yet.
    look.click(
        lambda out, p, u: lstm_units(out or p, u), [output, prompt, unit], [units_view, units_note], api_visibility="private", **LIGHT_LANE
    )

    # The API's twins of the page's Write button and word clicks (the page keeps the token ids in a gr.State).
    api_write, api_attention = gr.Button(visible=False), gr.Button(visible=False)
    api_word = gr.Number(visible=False, precision=0)
    api_write.click(
        generate_text, settings, [output, surprise, chart, drawn, note], api_name="generate_text", preprocess=False, **HEAVY_LANE
    )
    api_attention.click(
        attention, [output, api_word], [attention_view, attention_numbers], api_name="attention", preprocess=False, **LIGHT_LANE
    )
