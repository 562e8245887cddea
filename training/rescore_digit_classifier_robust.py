"""Score the robust digit model's test split again without training it: the same weights, a fresh card.

    python -m training.rescore_digit_classifier_robust                  # the shipped checkpoint, in place
    python -m training.rescore_digit_classifier_robust --init-from runs/robust-trades --out-dir runs/robust-trades
    python -m training.rescore_digit_classifier_robust --dry-run        # a tenth of the test digits, weak attacks, a temp folder

When the card gains a measurement (APGD at more budgets, say), forty minutes of training need not run again: this
loads the weights, rebuilds the run's settings from the command its card recorded, scores the test split with
`training.train_digit_classifier_robust.score_test` exactly as the end of a run does, and rewrites the card and
metrics. No choice is made on the test split here: the epoch was chosen on validation digits when the model trained.
The card keeps describing the run that made the weights (its command, wall time and chosen epoch).
"""

import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from data.mnist import load_splits
from models.digit_classifier import DigitClassifier, to_tensor
from models.hub import CHECKPOINTS
from training.common import RunOptions, Timer, hardware, opt, parse_config, save_checkpoint, setup
from training.train_digit_classifier_robust import NAME, TrainConfig, card, overfitting_note, score_test


@dataclass
class RescoreConfig(RunOptions):
    """Score the robust digit classifier's test split again, keeping its weights."""

    init_from: str = opt(str(CHECKPOINTS / NAME), "the checkpoint folder whose weights are kept (the output goes to --out-dir)")


@dataclass
class RecordedRun:
    """What the card says about the training run that made the weights."""

    command: str
    wall_time_s: float
    best_epoch: int
    epochs: int


def recorded_run(card_text: str, history: list[dict]) -> RecordedRun:
    """The run's command, wall time and chosen epoch, as its training script wrote them into the card."""
    run_command = re.search(r"```bash\n(python -m training\.train_digit_classifier_robust[^\n]*)\n```", card_text)
    wall = re.search(r"Wall time: (\d+(?:\.\d+)?) s", card_text)
    chosen = re.search(r"\(epoch (\d+) of (\d+)\)", card_text)
    if not (run_command and history):
        raise SystemExit("the card has no training command or the folder no training_log.json: train the model instead")
    best = max(history, key=lambda row: (row["val_pgd_accuracy"], row["epoch"]))
    return RecordedRun(
        command=run_command.group(1),
        wall_time_s=float(wall.group(1)) if wall else history[-1].get("seconds", 0.0),
        best_epoch=int(chosen.group(1)) if chosen else best["epoch"],
        epochs=int(chosen.group(2)) if chosen else history[-1]["epoch"],
    )


def main(cfg: RescoreConfig) -> None:
    timer = Timer()
    accelerator, out_dir = setup(cfg, NAME)
    folder = Path(cfg.init_from)
    model = DigitClassifier.from_pretrained(folder, strict=True).float().cpu().eval()
    history = json.loads((folder / "training_log.json").read_text()) if (folder / "training_log.json").is_file() else []
    run = recorded_run((folder / "README.md").read_text() if (folder / "README.md").is_file() else "", history)
    # The run's own settings (eps, loss, warm-up), from the command it recorded; the out-dir it named is not ours.
    train_cfg = parse_config(TrainConfig, shlex.split(run.command)[3:])
    train_cfg.dry_run, train_cfg.dataset = cfg.dry_run, cfg.dataset or train_cfg.dataset
    splits = load_splits(train_cfg.dataset or None)
    test_x, test_y = to_tensor(splits.test_x), torch.from_numpy(splits.test_y)
    test_steps = 40
    if cfg.dry_run:
        test_x, test_y, test_steps = test_x[::10], test_y[::10], 5
    metrics = score_test(model, test_x, test_y, train_cfg, test_steps)
    metrics["val_pgd_accuracy"] = round(next(row["val_pgd_accuracy"] for row in history if row["epoch"] == run.best_epoch), 4)
    accelerator.print(f"metrics: {metrics}")
    model_card = card(
        n_params=sum(p.numel() for p in model.parameters()),
        cfg=train_cfg,
        warmup=train_cfg.eps_warmup_epochs,
        splits=splits,
        best_epoch=run.best_epoch,
        epochs=run.epochs,
        test_steps=test_steps,
        overfitting=overfitting_note(history, run.best_epoch),
        metrics=metrics,
        run_command=run.command,
        wall_time_s=run.wall_time_s,
        accelerator=accelerator,
    )
    if out_dir.resolve() != folder.resolve():
        for extra in ("attack_metrics.json", "robustness_curve.json"):  # the benchmark's files travel with the weights
            if (folder / extra).is_file():
                out_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / extra, out_dir / extra)
    save_checkpoint(model, out_dir, model_card, history)
    accelerator.print(f"rescored {folder} into {out_dir} in {timer.seconds:.0f} s on {hardware(accelerator)}")


if __name__ == "__main__":
    main(parse_config(RescoreConfig))
