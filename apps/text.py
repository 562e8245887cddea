"""Text tab: two word-level language models write on from your prompt, word by word.

Trace: prompt -> the shared word tokenizer (checkpoints/word-lstm/tokenizer.json) -> token ids ->
`models.word_lstm.NextWord` steps `WordLSTM` or the `GPT2LMHeadModel` -> `filter_logits`
(temperature, top-k, top-p) -> a seeded draw -> the next word, streamed to the page.
"""

import functools
import json

import gradio as gr
import pandas as pd
import torch

from apps.common import HEAVY_LANE, LIGHT_LANE, check_number, lease_number, load_model, on_gpu
from data.austen import EOS, SPACE, UNK
from models import hub
from models.word_lstm import NextWord, WordLSTM, filter_logits

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
"""


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


def top_words(logits: torch.Tensor, k: int = 10) -> dict[str, float]:
    """The k most likely next words and their probabilities (temperature 1, no filtering)."""
    probs = logits.float().softmax(-1)
    values, indices = probs.topk(k)
    tok = tokenizer()
    return {label(tok.id_to_token(int(i))): float(v) for v, i in zip(values, indices, strict=True)}


@on_gpu
def next_words(choice="LSTM (recurrent network)", prompt="") -> tuple[dict[str, float], str]:
    """What the chosen model would say next after the prompt: its top 10 words, and notes."""
    # Only the model and the prompt matter here: the raw next-word distribution, no sampling settings.
    name, prompt, *_, notes = parse_settings(choice, prompt, temperature=1.0, top_k=0, top_p=1.0, words=1, seed=0)
    ids = prompt_ids(prompt, notes)
    logits = NextWord(model(name)).feed(ids)
    return top_words(logits), "\n\n".join(notes)


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
    """Stream (text so far, the top-10 chart for the prompt, notes) as each word is written."""
    name, prompt, temperature, top_k, top_p, words, seed, notes = parse_settings(choice, prompt, temperature, top_k, top_p, words, seed)
    ids = prompt_ids(prompt, notes)
    tok = tokenizer()
    stepper = NextWord(model(name))
    generator = torch.Generator().manual_seed(seed)
    logits = stepper.feed(ids)
    chart = top_words(logits)
    note = "\n\n".join(notes)
    text = prompt.rstrip()
    yield text, chart, note
    for _ in range(words):
        probs = filter_logits(logits, temperature, top_k, top_p)
        word = int(torch.multinomial(probs, 1, generator=generator))
        token = tok.id_to_token(word)
        text += piece(token)
        yield (text.lstrip() if not prompt.strip() else text), chart, note
        logits = stepper.feed([word])


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
                temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature (0 = always the likeliest word)")
                top_k = gr.Slider(0, 200, value=40, step=1, label="Top-k (0 = off)")
            with gr.Row():
                top_p = gr.Slider(0.05, 1, value=0.95, step=0.01, label="Top-p (1 = off)")
                words = gr.Number(value=60, precision=0, label=f"Words to write (1-{MAX_WORDS})")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (same seed and settings, same text)")
            with gr.Row():
                write = gr.Button("Write", variant="primary", elem_id="text-write")
                peek = gr.Button("What comes next?")
        with gr.Column(scale=2):
            output = gr.Textbox(label="Text (prompt, then what the model wrote)", lines=12, elem_id="text-output", buttons=["copy"])
            note = gr.Markdown(elem_id="text-note")
            chart = gr.Label(num_top_classes=10, label="What comes next? The 10 likeliest next words after the prompt", elem_id="text-next")
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
    # preprocess=False: the raw values reach parse_settings, whose messages name the setting and its range.
    write.click(
        generate_text,
        [choice, prompt, temperature, top_k, top_p, words, seed],
        [output, chart, note],
        api_name="generate_text",
        preprocess=False,
        **HEAVY_LANE,
    )
    peek.click(next_words, [choice, prompt], [chart, note], api_name="next_words", preprocess=False, **LIGHT_LANE)
    # Reads the written text, or the prompt when nothing has been written yet.
    look.click(
        lambda out, p, u: lstm_units(out or p, u), [output, prompt, unit], [units_view, units_note], api_visibility="private", **LIGHT_LANE
    )
