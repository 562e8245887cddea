"""The Text tab's parts: corpus splits, the word tokenizer, sampling, the n-gram yardstick, both
training scripts' dry runs, and the shipped models (determinism, edge cases, transformers loading)."""

import json
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest
import torch

from data.austen import EOS, UNK, build_tokenizer, chapters, encode, load_corpus, split_by_chapter
from models.ngram import KneserNeyTrigram
from models.word_lstm import WordLSTM, WordLSTMConfig, filter_logits, perplexity
from tests.conftest import needs_checkpoint
from training.train_word_lstm import tiny_text

REPO_ROOT = Path(__file__).resolve().parent.parent


def small_book(n_chapters: int = 20) -> list[str]:
    """A generated book: a title page, then chapters whose paragraphs name their chapter."""
    lines = ["A SMALL BOOK", "", "By Nobody", ""]
    for c in range(n_chapters):
        lines += [f"CHAPTER {c + 1}", ""]
        for p in range(3):
            lines += [f"Paragraph {p} of chapter {c}, in which Emma", "walked to Highbury.", ""]
    return lines


def test_chapters_are_dealt_whole_into_disjoint_splits():
    book = small_book()
    assert len(chapters(book)) == 20
    assert chapters(book)[0][0] == "Paragraph 0 of chapter 0, in which Emma walked to Highbury."  # lines joined, title page dropped
    corpus = split_by_chapter([book], "test")
    chapter_of = lambda paragraphs: {int(p.split("chapter ")[1].split(",")[0]) for p in paragraphs}  # noqa: E731
    assert chapter_of(corpus.val) == {4, 14} and chapter_of(corpus.test) == {9, 19}
    assert chapter_of(corpus.train).isdisjoint(chapter_of(corpus.val) | chapter_of(corpus.test))
    assert len(corpus.train) == 16 * 3


def test_text_file_without_chapters_is_split_by_position(tmp_path):
    path = tmp_path / "plain.txt"
    path.write_text("\n\n".join(f"Paragraph number {i}." for i in range(100)))
    corpus = load_corpus(text_file=str(path))
    assert (len(corpus.train), len(corpus.val), len(corpus.test)) == (80, 10, 10)
    assert corpus.test[0] == "Paragraph number 90."


def test_tokenizer_round_trip_and_unknown_words():
    text = tiny_text(200)
    tokenizer = build_tokenizer(text, min_frequency=1)
    sample = "Emma walked to Highbury. Mr. Darcy danced with Harriet, and was happy!"
    ids = tokenizer.encode(sample).ids
    assert UNK not in [tokenizer.id_to_token(i) for i in ids]
    assert tokenizer.decode(ids) == " " + sample  # exact: spaces are part of the tokens, the first word's too
    assert tokenizer.decode(tokenizer.encode("Emma walked to Highbury.").ids[2:]) == " to Highbury."
    unknown = tokenizer.encode("Zebras quarrelled").tokens
    assert unknown == [UNK, UNK]
    stream = encode(tokenizer, ["Emma walked.", "Harriet wrote."])
    assert tokenizer.id_to_token(int(stream[-1])) == EOS and (stream == tokenizer.token_to_id(EOS)).sum() == 2


def test_filter_logits_temperature_top_k_and_top_p():
    logits = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0])
    assert filter_logits(logits, 0, 0, 1.0).tolist() == [1, 0, 0, 0, 0]  # temperature 0: greedy
    top2 = filter_logits(logits, 1.0, 2, 1.0)
    assert (top2[2:] == 0).all() and torch.isclose(top2.sum(), torch.tensor(1.0))
    full = logits.softmax(0)
    nucleus = filter_logits(logits, 1.0, 0, 0.8)
    kept = int((nucleus > 0).sum())
    assert full[: kept - 1].sum() < 0.8 <= full[:kept].sum()  # the smallest set that reaches top_p
    hot, cold = filter_logits(logits, 2.0, 0, 1.0), filter_logits(logits, 0.5, 0, 1.0)
    assert hot[0] < full[0] < cold[0]


def test_kneser_ney_is_a_distribution_and_beats_uniform():
    text = tiny_text(400)
    tokenizer = build_tokenizer(text[:300], min_frequency=1)
    train, test = encode(tokenizer, text[:300]), encode(tokenizer, text[300:])
    vocab = tokenizer.get_vocab_size()
    model = KneserNeyTrigram(train, vocab)
    for u, v in [(int(train[0]), int(train[1])), (0, 0), (vocab - 1, 3)]:  # seen, odd and unseen contexts
        assert abs(sum(model.p_trigram(u, v, w) for w in range(vocab)) - 1) < 1e-9
    assert model.perplexity(test) < vocab / 2


def test_perplexity_of_a_model_that_knows_nothing_is_the_vocabulary_size():
    model = WordLSTM(WordLSTMConfig(vocab_size=50, size=8, layers=1, dropout=0.0))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # every logit 0: a uniform guess
    ids = torch.randint(0, 50, (500,))
    assert perplexity(model, ids, context=35) == pytest.approx(50, rel=1e-4)


@pytest.mark.parametrize("script", ["training.train_word_lstm", "training.train_word_gpt"])
def test_training_dry_run_saves_a_loadable_checkpoint(script, tmp_path):
    out = tmp_path / "ckpt"
    result = subprocess.run(
        [sys.executable, "-m", script, "--dry-run", "--out-dir", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"config.json", "model.safetensors", "README.md", "metrics.json", "training_log.json", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_ppl"] < metrics["vocab_size"]  # it learned something about the tiny text
    if script.endswith("lstm"):
        model = WordLSTM.from_pretrained(out, strict=True)
        assert model.output.weight.data_ptr() == model.embedding.weight.data_ptr()  # still tied after loading
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(out)
        assert model.config.model_type == "gpt2"


# --- The shipped models, through the tab's functions -------------------------------------------------


def written(**kwargs) -> tuple[str, list, dict, dict, str]:
    from apps import text

    *_, last = text.generate_text(**kwargs)
    return last


@needs_checkpoint("word-lstm")
@needs_checkpoint("word-gpt")
@pytest.mark.parametrize("choice", ["LSTM (recurrent network)", "GPT (small transformer)"])
def test_same_seed_same_text_and_another_seed_another(choice):
    settings = dict(choice=choice, prompt="Emma was", temperature=1.0, top_k=0, top_p=1.0, words=25)
    first, _, chart, _, _ = written(seed=3, **settings)
    assert written(seed=3, **settings)[0] == first
    assert written(seed=4, **settings)[0] != first
    assert first.startswith("Emma was") and len(first.split()) > 10
    assert len(chart) == 10 and 0.1 < sum(chart.values()) <= 1.0 + 1e-6


@needs_checkpoint("word-lstm")
def test_text_streams_one_word_at_a_time():
    from apps import text

    steps = list(text.generate_text("LSTM (recurrent network)", "She", 0.8, 40, 0.95, 12, 0))
    assert len(steps) == 13  # the prompt alone, then one more word per step
    assert all(b[0].startswith(a[0]) for a, b in zip(steps, steps[1:], strict=False))


@needs_checkpoint("word-lstm")
def test_edge_cases_are_handled_with_a_message():
    from apps import text

    out, *_, note = written(choice="LSTM (recurrent network)", prompt="", temperature=0.8, top_k=40, top_p=0.95, words=10, seed=0)
    assert out.strip() and "paragraph boundary" in note
    out, *_, note = written(
        choice="LSTM (recurrent network)", prompt="Qwxz blorft zzyzx", temperature=0.8, top_k=40, top_p=0.95, words=5, seed=0
    )
    assert "None of the prompt's words" in note and out.startswith("Qwxz blorft zzyzx")
    *_, note = written(choice="LSTM (recurrent network)", prompt="Emma", temperature=0.8, top_k=40, top_p=0.95, words=0, seed=0)
    assert "at least 1" in note
    steps = list(text.generate_text("LSTM (recurrent network)", "Emma", 0.8, 40, 0.95, 10_000, 0))
    assert len(steps) == text.MAX_WORDS + 1 and f"the limit is {text.MAX_WORDS}" in steps[-1][-1]
    for bad in [dict(temperature=-1), dict(top_p=0), dict(seed="x"), dict(words="many"), dict(choice="ELIZA"), dict(prompt="x" * 5000)]:
        settings = dict(choice="LSTM (recurrent network)", prompt="Emma", temperature=0.8, top_k=40, top_p=0.95, words=5, seed=0) | bad
        with pytest.raises(gr.Error):
            written(**settings)


@needs_checkpoint("word-gpt")
def test_word_gpt_is_a_plain_transformers_checkpoint(tmp_path):
    """No project code: load it from a process that cannot import our packages, and write with pipeline()."""
    code = (
        "from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline, set_seed\n"
        "set_seed(0)\n"
        f"model = AutoModelForCausalLM.from_pretrained({str(REPO_ROOT / 'checkpoints' / 'word-gpt')!r})\n"
        f"tokenizer = AutoTokenizer.from_pretrained({str(REPO_ROOT / 'checkpoints' / 'word-gpt')!r})\n"
        "out = pipeline('text-generation', model=model, tokenizer=tokenizer)('It is a truth', min_new_tokens=12, max_new_tokens=20, do_sample=True)\n"
        "print(out[0]['generated_text'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    # The continuation is decoded on its own and appended: its first word must keep its space ("truth in", not "truthin").
    assert result.stdout.startswith("It is a truth ") and len(result.stdout.split()) > 8


@needs_checkpoint("word-lstm")
def test_lstm_units_colour_every_word_within_minus_one_to_one():
    from apps import text

    spans, note = text.lstm_units('"Oh!" said Emma. "Mr. Knightley is here."', -1)
    assert "".join(s for s, _ in spans).strip() == '"Oh!" said Emma. "Mr. Knightley is here."'
    assert all(-1 <= v <= 1 for _, v in spans) and len({v for _, v in spans}) > 3
    assert "changes most" in note or "change most" in note
    spans_7, _ = text.lstm_units("Emma", 7)
    assert len(spans_7) == 1
    with pytest.raises(gr.Error):
        text.lstm_units("   ", -1)
    with pytest.raises(gr.Error):
        text.lstm_units("Emma", 100_000)


# --- What sampling does, how surprised the model was, and where the GPT looked ------------------------

CHOICES = ["LSTM (recurrent network)", "GPT (small transformer)"]


def full_read_bits(choice: str, ids: list[int]) -> list[float]:
    """-log2 p of ids[1:], from one plain forward pass over the whole text (no stepping, no cache)."""
    from apps import text

    net = text.model(text.MODELS[choice])
    with torch.inference_mode():
        x = torch.tensor([ids])
        logits = net(x)[0] if isinstance(net, WordLSTM) else net(input_ids=x).logits
    log_p = torch.log_softmax(logits[0].double(), -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return (-log_p / torch.log(torch.tensor(2.0, dtype=torch.float64))).tolist()


@needs_checkpoint("word-lstm")
@needs_checkpoint("word-gpt")
@pytest.mark.parametrize("choice", CHOICES)
@pytest.mark.parametrize("top_k, top_p", [(5, 1.0), (0, 0.5), (40, 0.95), (0, 1.0)])
def test_the_drawn_from_chart_sums_to_one_and_is_zero_outside_top_k_and_top_p(choice, top_k, top_p):
    from apps import text

    raw, drawn, note = text.next_words(choice, "Mr. Darcy", 0.7, top_k, top_p)
    logits = text.NextWord(text.model(text.MODELS[choice])).feed(text.prompt_ids("Mr. Darcy", []))
    probs = filter_logits(logits, 0.7, top_k, top_p)
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    kept = int((probs > 0).sum())
    assert f"picks from **{kept:,}**" in note
    tempered = (logits / 0.7).softmax(-1).sort(descending=True)
    if top_k:
        assert kept <= top_k
    if top_p < 1:  # the smallest set of the likeliest words (of top-k's, if on) whose tempered chance reaches top_p
        z = logits / 0.7
        if top_k:
            z = z.masked_fill(z < z.topk(top_k).values[-1], -torch.inf)
        ordered = z.softmax(-1).sort(descending=True).values
        assert float(ordered[: kept - 1].sum()) < top_p <= float(ordered[:kept].sum()) + 1e-6
    # Every word of the drawn chart is among the kept; the kept are exactly the likeliest words, in the model's order.
    kept_ids = set(probs.nonzero()[:, 0].tolist())
    assert kept_ids == set(tempered.indices[:kept].tolist())
    assert list(drawn) == list(raw)[: len(drawn)]
    assert all(p > 0 for p in drawn.values())
    if kept <= 10:
        assert sum(drawn.values()) == pytest.approx(1.0, abs=1e-5) and len(drawn) == kept
    # The raw chart is the model's own distribution: temperature 1, nothing cut.
    assert list(raw.values()) == pytest.approx(logits.softmax(-1).sort(descending=True).values[:10].tolist(), abs=1e-6)


@needs_checkpoint("word-lstm")
@needs_checkpoint("word-gpt")
@pytest.mark.parametrize("choice", CHOICES)
def test_surprise_is_minus_log2_p_of_every_word_under_the_model(choice):
    from apps import text

    steps = list(text.writing(choice, "Emma could not repress a smile", 0.9, 40, 0.95, 30, 5))
    out, spans, _, _, note, ids = steps[-1]
    bits = full_read_bits(choice, ids)
    assert len(spans) == len(ids) - 1 == len(bits)
    assert [name for _, name in spans] == [text.surprise_name(b) for b in bits]
    assert "".join(piece for piece, _ in spans).lstrip() == out
    written_bits = bits[-30:]
    assert f"what it wrote: **{sum(written_bits) / 30:.2f} bits**" in note
    # The model-level function, checked on its own against a hand-made distribution.
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125]]))
    assert text.surprise_bits(logits, torch.tensor([1])).tolist() == pytest.approx([2.0])


@needs_checkpoint("word-gpt")
def test_words_read_before_the_gpts_window_are_marked_not_scored():
    from apps import text

    prompt = " ".join(["Emma walked to Highbury and back again."] * 40)  # ~360 tokens; the GPT's window is 128
    *_, spans, _, _, _, ids = next(iter(text.writing("GPT (small transformer)", prompt, 0.8, 40, 0.95, 1, 0)))
    names = [name for _, name in spans]
    assert names[0] == text.NOT_SCORED and names[-1] != text.NOT_SCORED
    # The GPT reads the last half-window (64 words) afresh: its first 63 are scored; the 64th predicts what comes next.
    assert names.count(text.NOT_SCORED) == len(ids) - 1 - 63


@needs_checkpoint("word-gpt")
def test_attention_rows_sum_to_one_and_never_look_ahead():
    from apps import text

    sentence = "It is a truth universally acknowledged"
    table, data = text.attention(sentence, 4)
    assert data["word"] == "truth" and data["words"][0] == "¶ (start)" and len(data["words"]) == 5
    weights = torch.tensor(data["attention"])  # (layers, heads, words up to "truth")
    assert weights.shape == (4, 4, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(4, 4), atol=1e-4)
    # Causal: the words after "truth" change nothing in its row; the full matrix is zero above the diagonal.
    ids = text.prompt_ids(sentence, [])
    full = text.attention_weights(text.model("word-gpt"), ids)
    assert torch.allclose(full[:, :, 4, :5], weights, atol=1e-5) and (full.triu(1) == 0).all()
    assert table.count("<tr><th>layer ") == 16 and "truth" in table
    assert text.attention(sentence, 0)[1]["word"] == "acknowledged"  # 0 = the last word
    for bad, message in [("", "Write a prompt"), ("   ", "Write a prompt"), ("x" * 20_000, "shorter")]:
        with pytest.raises(gr.Error, match=message):
            text.attention(bad, 1)
    for word in (-1, 7, 2.5, "first"):
        with pytest.raises(gr.Error, match="Word"):
            text.attention(sentence, word)


@needs_checkpoint("word-gpt")
def test_clicking_a_written_word_shows_its_attention():
    from apps import text

    *_, ids = list(text.writing("GPT (small transformer)", "Mr. Darcy", 0.8, 40, 0.95, 5, 0))[-1]
    table, data = text.attention_click(ids, gr.SelectData(None, {"index": 1, "value": [".", None]}))
    assert data["position"] == 1 and len(data["words"]) == 3
    assert "Press Write" in text.attention_click(None, gr.SelectData(None, {"index": 0, "value": None}))[0]
    assert "Press Write" in text.attention_click(ids, gr.SelectData(None, {"index": 99, "value": None}))[0]
