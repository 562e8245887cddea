"""Train the `word-gpt` checkpoint: a small GPT-2-style transformer, from scratch, on the same words
as the LSTM.

    python -m training.train_word_gpt                          # full run on 2 CPU cores (see the card for the wall time)
    python -m training.train_word_gpt --dry-run                # a few steps on a tiny generated text, into a temp folder
    python -m training.train_word_gpt --text-file book.txt     # any plain text
    accelerate launch -m training.train_word_gpt --dataset Salesforce/wikitext:wikitext-103-raw-v1 --layers 8 --width 512

The model is a plain `transformers.GPT2LMHeadModel`; the folder it writes is a standard
transformers checkpoint (config.json, model.safetensors, tokenizer.json), so
`AutoModelForCausalLM.from_pretrained` and `pipeline("text-generation")` load it with no project
code. The tokenizer is the LSTM's: it is read from `checkpoints/word-lstm` when that exists and
built from the same training split otherwise, so perplexities compare word for word.

Each step takes `batch_size` windows of `context` tokens at random places in the training stream
and predicts every next token inside them (nanoGPT's loop). Validation perplexity is measured
`evals` times; the best is kept and the test split is scored once at the end.
"""

import copy
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from data.austen import EOS, UNK, build_tokenizer, encode, load_tokenizer, save_tokenizer
from models.hub import CHECKPOINTS
from models.word_lstm import METRIC_NOTES, perplexity, text_metrics
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
from training.train_word_lstm import training_text

NAME = "word-gpt"


@dataclass
class TrainConfig(RunOptions):
    """Train a small GPT-2-style word-level language model from scratch."""

    text_file: str = opt("", "train on this plain text file instead of the Austen novels")
    tokenizer_from: str = opt(str(CHECKPOINTS / "word-lstm"), "reuse this folder's tokenizer.json (the LSTM's), if it exists")
    steps: int = opt(6000, "optimiser steps")
    batch_size: int = opt(32, "windows per step")
    context: int = opt(128, "tokens per window = the model's context length")
    width: int = opt(256, "embedding width (n_embd)")
    layers: int = opt(4, "transformer blocks")
    heads: int = opt(4, "attention heads per block")
    dropout: float = opt(0.2, "dropout on embeddings, attention and residuals: 0.7M words overfit quickly")
    lr: float = opt(1e-3, "peak AdamW learning rate; linear warm-up, cosine decay to 10%")
    weight_decay: float = opt(0.1, "AdamW weight decay on matrices (not on biases, norms or embeddings)")
    clip: float = opt(1.0, "gradient-norm clipping")
    evals: int = opt(12, "validation checks during training (the best is kept)")
    min_frequency: int = opt(3, "words seen fewer times become <unk> (only when the tokenizer is built here)")


def gpt_config(vocab: int, cfg: TrainConfig, eos_id: int):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab,
        n_positions=cfg.context,
        n_embd=cfg.width,
        n_layer=cfg.layers,
        n_head=cfg.heads,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        tie_word_embeddings=True,
    )


def card(*, n_params, cfg, best_step, corpus, metrics, timer, accelerator, history) -> CardInfo:
    """The model card: what the checkpoint is, its data and split, its held-out metrics and how to use it."""
    return CardInfo(
        name=NAME,
        title="Word GPT: a small transformer language model that writes like Jane Austen",
        summary=(
            f"A GPT-2-style transformer ({n_params / 1e6:.1f}M parameters: {cfg.layers} blocks, width {cfg.width}, {cfg.heads} heads, "
            f"a {cfg.context}-word context) trained from scratch to predict the next word. Where the LSTM squeezes everything it "
            "has read into one state vector, every word here looks back at every earlier word in its window with attention. "
            f"{cfg.steps} steps of {cfg.batch_size} random windows; the checkpoint with the best validation perplexity "
            f"(step {best_step}) is the one shipped."
        ),
        data=(
            f"{corpus.source}. The novels are public domain; the Debian/CRAN package that carries them is MIT. "
            f"The same word-level tokenizer as `word-lstm` (words and punctuation, case kept, rare words `{UNK}`, "
            f"`{EOS}` after each paragraph)."
        ),
        split=(
            "Whole chapters: chapter index % 10 == 4 is validation, == 9 is test, the rest train (data/austen.py). "
            "The test split is scored once, with overlapping windows so every word has at least half a window of history."
        ),
        metrics=metrics,
        metric_notes=METRIC_NOTES | {"test_ppl": METRIC_NOTES["test_ppl"] + "; compare with word-lstm's, same tokens"},
        command=command("training.train_word_gpt"),
        wall_time_s=timer.seconds,
        hardware=hardware(accelerator),
        limits=(
            "About 0.7M words of one author is very little for a transformer: it strings together Austen's phrases and loses "
            f"the thread within a few sentences. It sees at most {cfg.context} words back. Words outside its vocabulary are "
            f"`{UNK}` to it, and it writes `{EOS}` where a paragraph ends."
        ),
        usage=(
            "from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline\n"
            f'model = AutoModelForCausalLM.from_pretrained("checkpoints/{NAME}")\n'
            f'tokenizer = AutoTokenizer.from_pretrained("checkpoints/{NAME}")\n'
            'writer = pipeline("text-generation", model=model, tokenizer=tokenizer)\n'
            'print(writer("It is a truth universally acknowledged", max_new_tokens=40, do_sample=True)[0]["generated_text"])'
        ),
        tags=["text-generation", "gpt2", "language-model"],
        library_name="transformers",
        extra="\n## Perplexity during training\n\n| step | train | validation |\n| --- | --- | --- |\n"
        + "\n".join(f"| {h['step']} | {h['train_ppl']:.1f} | {h['val_ppl']:.1f} |" for h in history)
        + "\n\nTrain perplexity is measured with dropout on, while training.\n",
    )


def main(cfg: TrainConfig) -> None:
    from transformers import GPT2LMHeadModel

    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    corpus = training_text(cfg)
    if cfg.dry_run:
        cfg.steps, cfg.batch_size, cfg.context, cfg.width, cfg.layers, cfg.heads, cfg.evals, cfg.min_frequency = 8, 4, 32, 32, 1, 2, 2, 1
        cfg.tokenizer_from = ""
    shared = cfg.tokenizer_from and not cfg.text_file and not cfg.dataset and (Path(cfg.tokenizer_from) / "tokenizer.json").is_file()
    tokenizer = load_tokenizer(cfg.tokenizer_from) if shared else build_tokenizer(corpus.train, cfg.min_frequency)
    train_ids, val_ids, test_ids = (encode(tokenizer, p) for p in (corpus.train, corpus.val, corpus.test))
    vocab, eos_id = tokenizer.get_vocab_size(), tokenizer.token_to_id(EOS)
    accelerator.print(f"{corpus.source}: vocabulary {vocab} ({'shared with ' + cfg.tokenizer_from if shared else 'built here'})")

    torch.manual_seed(cfg.seed)
    model = GPT2LMHeadModel(gpt_config(vocab, cfg, eos_id))
    # Weight decay on weight matrices only (nanoGPT): norms, biases and embeddings are left alone.
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wte" not in n and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "wte" not in n and "wpe" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95)
    )
    warmup = max(1, cfg.steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    device = accelerator.device
    generator = torch.Generator().manual_seed(cfg.seed)
    eval_every = max(1, cfg.steps // cfg.evals)
    history, best_val, best_step, best_state = [], float("inf"), 0, None
    running, seen = 0.0, 0
    for step in progress(range(1, cfg.steps + 1), accelerator, desc=NAME):
        model.train()
        starts = torch.randint(0, len(train_ids) - cfg.context, (cfg.batch_size,), generator=generator)
        batch = torch.stack([train_ids[s : s + cfg.context] for s in starts.tolist()]).to(device)  # (B, context)
        with accelerator.autocast():
            loss = model(input_ids=batch, labels=batch).loss  # labels are shifted inside the model
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        scheduler.step()
        running += loss.item()
        seen += 1
        if step % eval_every == 0 or step == cfg.steps:
            unwrapped = accelerator.unwrap_model(model)
            val_ppl = perplexity(unwrapped, val_ids, cfg.context)
            train_ppl = math.exp(running / seen)
            history.append({"step": step, "train_ppl": round(train_ppl, 2), "val_ppl": round(val_ppl, 2), "lr": scheduler.get_last_lr()[0]})
            accelerator.print(f"step {step}: train ppl {train_ppl:.1f}, val ppl {val_ppl:.1f}")
            running, seen = 0.0, 0
            if val_ppl < best_val:
                best_val, best_step, best_state = val_ppl, step, copy.deepcopy(unwrapped.state_dict())
                if not cfg.dry_run and accelerator.is_main_process:
                    unwrapped.save_pretrained(out_dir / "in-progress")
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(model).float().cpu()
    model.load_state_dict(best_state)
    test_ppl = perplexity(model, test_ids, cfg.context)
    accelerator.print(f"test perplexity {test_ppl:.1f} (best step {best_step})")
    metrics = text_metrics(test_ppl, best_val, tokenizer, train_ids, test_ids)
    n_params = sum(p.numel() for p in model.parameters())
    model_card = card(
        n_params=n_params,
        cfg=cfg,
        best_step=best_step,
        corpus=corpus,
        metrics=metrics,
        timer=timer,
        accelerator=accelerator,
        history=history,
    )
    save_checkpoint(model, out_dir, model_card, history)  # transformers' save_pretrained: config.json + model.safetensors
    save_tokenizer(tokenizer, out_dir, model_max_length=cfg.context)
    shutil.rmtree(out_dir / "in-progress", ignore_errors=True)
    accelerator.print(f"saved {out_dir} in {timer.seconds:.0f} s")
    if cfg.push_to_hub:
        accelerator.print(f"pushed to {push_checkpoint(out_dir, cfg.push_to_hub)}")


if __name__ == "__main__":
    main(parse_config(TrainConfig))
