"""Train the `word-lstm` checkpoint: a 2-layer word-level LSTM language model on Jane Austen.

    python -m training.train_word_lstm                         # full run on 2 CPU cores (see the card for the wall time)
    python -m training.train_word_lstm --dry-run               # a few steps on a tiny generated text, into a temp folder
    python -m training.train_word_lstm --text-file book.txt    # any plain text (paragraphs separated by blank lines)
    python -m training.train_word_lstm --dataset Salesforce/wikitext:wikitext-2-raw-v1

The training text is one long stream of word ids, cut into `batch_size` parallel rows. Each step
reads the next `context` words of every row and predicts each following word; the LSTM's state
is carried into the next step but gradients stop there (truncated backpropagation through time).
Validation perplexity is measured after every epoch; the best epoch is kept and the test split is
scored once at the end. The tokenizer is built from the training split and saved in the
checkpoint folder (tokenizer.json), so the GPT model and the benchmark use the same words.
"""

import copy
import math
import shutil
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from data.austen import EOS, UNK, Corpus, build_tokenizer, encode, load_corpus, save_tokenizer
from models.word_lstm import METRIC_NOTES, WordLSTM, WordLSTMConfig, perplexity, text_metrics
from training.common import (
    CardInfo,
    RunOptions,
    Timer,
    command,
    hardware,
    opt,
    parse_config,
    progress,
    push_checkpoint,
    save_checkpoint,
    setup,
)

NAME = "word-lstm"


@dataclass
class TrainConfig(RunOptions):
    """Train a word-level LSTM language model."""

    text_file: str = opt("", "train on this plain text file instead of the Austen novels")
    epochs: int = opt(12, "passes over the training text")
    batch_size: int = opt(32, "parallel rows of text")
    context: int = opt(35, "words per step (backpropagation through time stops here)")
    size: int = opt(400, "embedding and hidden width (tied input/output embeddings need them equal)")
    layers: int = opt(2, "stacked LSTM layers")
    dropout: float = opt(0.4, "dropout on embeddings, between layers and before the output")
    lr: float = opt(3e-3, "peak Adam learning rate; cosine decay to 5% of it")
    weight_decay: float = opt(1e-6, "tiny L2 on all weights (AdamW)")
    clip: float = opt(0.5, "gradient-norm clipping: LSTMs occasionally explode")
    min_frequency: int = opt(3, "words seen fewer times in the training split become <unk>")


def rows(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N,) stream -> (batch_size, N // batch_size): row r continues where row r - 1's text ended."""
    n = len(ids) // batch_size
    return ids[: n * batch_size].view(batch_size, n)


def tiny_text(paragraphs: int = 300, seed: int = 0) -> list[str]:
    """A small generated text for dry runs and tests: sentences from a toy grammar."""
    import random

    rng = random.Random(seed)
    names = ["Emma", "Mr. Knightley", "Harriet", "Mrs. Weston", "Elizabeth", "Mr. Darcy"]
    verbs = ["walked to", "wrote to", "thought of", "spoke with", "danced with"]
    places = ["Highbury", "the village", "Pemberley", "the ball", "Hartfield"]
    out = []
    for _ in range(paragraphs):
        sentences = [
            f"{rng.choice(names)} {rng.choice(verbs)} {rng.choice(names + places)}{rng.choice(['.', '!', ', and was happy.'])}"
            for _ in range(rng.randint(1, 4))
        ]
        out.append(" ".join(sentences))
    return out


def training_text(cfg) -> Corpus:
    """The corpus to train on: a tiny generated text for --dry-run, else Austen / --text-file / --dataset."""
    if cfg.dry_run:
        text = tiny_text()
        return Corpus(text[:240], text[240:270], text[270:], "a tiny generated text (dry run)")
    return load_corpus(cfg.text_file, cfg.dataset)


def card(*, cfg, n_params, best_epoch, corpus, metrics, timer, accelerator, vocab, history) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    return CardInfo(
        name=NAME,
        title="Word LSTM: a recurrent language model that writes like Jane Austen",
        summary=(
            f"A {cfg.layers}-layer LSTM ({n_params / 1e6:.1f}M parameters, width {cfg.size}, tied input and output embeddings, "
            f"dropout {cfg.dropout}) that reads words one at a time and predicts the next one. It was trained for {cfg.epochs} epochs "
            f"on sequences of {cfg.context} words with truncated backpropagation through time; the epoch with the best validation "
            f"perplexity ({best_epoch}) is the one shipped."
        ),
        data=(
            f"{corpus.source}. The novels are public domain; the Debian/CRAN package that carries them is MIT. "
            f"Word-level tokens (words and punctuation, case kept, a leading space marked with ▁); words seen fewer than "
            f"{cfg.min_frequency} times in the training split are `{UNK}`; `{EOS}` ends each paragraph."
        ),
        split=(
            "Whole chapters: chapter index % 10 == 4 is validation, == 9 is test, the rest train (data/austen.py). "
            "The tokenizer and the choice of epoch see only train and validation; the test split is scored once."
        ),
        metrics=metrics,
        metric_notes=METRIC_NOTES,
        command=command("training.train_word_lstm"),
        wall_time_s=timer.seconds,
        hardware=hardware(accelerator),
        limits=(
            "About 0.7M words of one author is very little text for a language model: it writes plausible Austen-flavoured "
            "phrases that lose the thread within a sentence or two. It knows nothing after 1817, and words outside its "
            f"{vocab}-word vocabulary are `{UNK}` to it."
        ),
        usage=(
            "import torch\n"
            "from tokenizers import Tokenizer\n"
            "from models.word_lstm import WordLSTM\n"
            f'model = WordLSTM.from_pretrained("checkpoints/{NAME}", strict=True).eval()\n'
            f'tokenizer = Tokenizer.from_file("checkpoints/{NAME}/tokenizer.json")\n'
            "logits, state = model(torch.tensor([tokenizer.encode('It is a truth').ids]))  # (1, T, vocab)"
        ),
        tags=["text-generation", "lstm", "language-model"],
        extra="\n## Perplexity per epoch\n\n| epoch | train | validation |\n| --- | --- | --- |\n"
        + "\n".join(f"| {h['epoch']} | {h['train_ppl']:.1f} | {h['val_ppl']:.1f} |" for h in history)
        + "\n\nTrain perplexity is measured with dropout on, while training, so it sits above what the model scores on the same text at inference.\n",
    )


def main(cfg: TrainConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    corpus = training_text(cfg)
    if cfg.dry_run:
        cfg.epochs, cfg.size, cfg.batch_size, cfg.min_frequency = 2, 32, 4, 1
    tokenizer = build_tokenizer(corpus.train, cfg.min_frequency)
    train_ids, val_ids, test_ids = (encode(tokenizer, p) for p in (corpus.train, corpus.val, corpus.test))
    vocab = tokenizer.get_vocab_size()
    accelerator.print(f"{corpus.source}: vocabulary {vocab}, tokens train {len(train_ids)}, val {len(val_ids)}, test {len(test_ids)}")

    torch.manual_seed(cfg.seed)
    model = WordLSTM(WordLSTMConfig(vocab_size=vocab, size=cfg.size, layers=cfg.layers, dropout=cfg.dropout, context=cfg.context))
    train_rows = rows(train_ids, cfg.batch_size)
    steps_per_epoch = math.ceil((train_rows.shape[1] - 1) / cfg.context)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 200) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s / total_steps, 1.0))))
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    device = accelerator.device
    history, best_val, best_epoch, best_state = [], float("inf"), 0, None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        state, total, count = None, 0.0, 0
        for start in progress(range(0, train_rows.shape[1] - 1, cfg.context), accelerator, desc=f"{NAME} epoch {epoch}"):
            x = train_rows[:, start : start + cfg.context].to(device)
            y = train_rows[:, start + 1 : start + cfg.context + 1].to(device)
            x = x[:, : y.shape[1]]
            if state is not None:
                state = tuple(s.detach() for s in state)  # keep the memory, cut the gradient
            with accelerator.autocast():
                logits, state = model(x, state)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), cfg.clip)
            optimizer.step()
            scheduler.step()
            total += loss.item() * y.numel()
            count += y.numel()
        unwrapped = accelerator.unwrap_model(model)
        val_ppl = perplexity(unwrapped, val_ids, cfg.context)
        train_ppl = math.exp(total / count)  # with dropout on, as trained
        history.append({"epoch": epoch, "train_ppl": round(train_ppl, 2), "val_ppl": round(val_ppl, 2), "lr": scheduler.get_last_lr()[0]})
        accelerator.print(f"epoch {epoch}: train ppl {train_ppl:.1f}, val ppl {val_ppl:.1f}")
        if val_ppl < best_val:
            best_val, best_epoch, best_state = val_ppl, epoch, copy.deepcopy(unwrapped.state_dict())
            if not cfg.dry_run and accelerator.is_main_process:
                unwrapped.save_pretrained(out_dir / "in-progress")
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(model).float().cpu()
    model.load_state_dict(best_state)
    test_ppl = perplexity(model, test_ids, cfg.context)
    metrics = text_metrics(test_ppl, best_val, tokenizer, train_ids, test_ids)
    accelerator.print(f"test perplexity {test_ppl:.1f} (best epoch {best_epoch})")
    n_params = sum(p.numel() for p in model.parameters())
    model_card = card(
        cfg=cfg,
        n_params=n_params,
        best_epoch=best_epoch,
        corpus=corpus,
        metrics=metrics,
        timer=timer,
        accelerator=accelerator,
        vocab=vocab,
        history=history,
    )
    save_checkpoint(model, out_dir, model_card, history)
    save_tokenizer(tokenizer, out_dir, model_max_length=10**6)
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    accelerator.print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(TrainConfig))
