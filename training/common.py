"""What every training script shares, and nothing more: CLI flags from a config dataclass,
seeding and `accelerate`, progress bars, saving a checkpoint with its model card, pushing it
to the Hub. Each script still owns its model, optimiser and loop, written out plainly.
"""

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from huggingface_hub import HfApi, ModelCard, ModelCardData
from tqdm.auto import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent


def opt(default: Any, help: str) -> Any:
    """A config field with a default and a line of --help (lists get a fresh copy each time)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class RunOptions:
    """Flags every training script takes; each script's config adds its own after these."""

    out_dir: str = opt("", "where the checkpoint goes (default: checkpoints/<name>; a temp folder with --dry-run)")
    seed: int = opt(0, "seeds python, numpy and torch: same seed, same model on the same hardware")
    dataset: str = opt("", "train on another source: a Hub dataset id or a local folder (see the data module)")
    dry_run: bool = opt(False, "a few steps on tiny data, written to a temporary folder; used by the tests")
    push_to_hub: str = opt("", "after training, upload the checkpoint folder to this Hub repo id (user/name)")
    mixed_precision: str = opt("no", "'no', 'bf16' or 'fp16' (fp16 needs a GPU); passed to accelerate")
    num_workers: int = opt(0, "DataLoader worker processes; 0 keeps everything in this process")


def parse_config(config_cls: type, argv: list[str] | None = None) -> Any:
    """Build an argparse parser from a dataclass: one --flag per field, typed from the default."""
    parser = argparse.ArgumentParser(description=(config_cls.__doc__ or "").strip())
    for f in dataclasses.fields(config_cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "") + f" (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif isinstance(default, list):
            item_type = type(default[0]) if default else str
            parser.add_argument(flag, dest=f.name, type=item_type, nargs="+", default=default, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), default=default, help=help_text)
    return config_cls(**vars(parser.parse_args(argv)))


def setup(cfg: RunOptions, name: str) -> tuple[Accelerator, Path]:
    """Seed everything, start accelerate, and decide where the checkpoint goes."""
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision)
    set_seed(cfg.seed)
    if cfg.out_dir:
        out_dir = Path(cfg.out_dir)
    elif cfg.dry_run:
        out_dir = Path(tempfile.mkdtemp(prefix=f"{name}-dry-run-"))
    else:
        out_dir = REPO_ROOT / "checkpoints" / name
    return accelerator, out_dir


def progress(iterable, accelerator: Accelerator, **kwargs):
    """tqdm on the main process only, so `accelerate launch` prints one bar, not one per process."""
    return tqdm(iterable, disable=not accelerator.is_local_main_process, dynamic_ncols=True, **kwargs)


def hardware(accelerator: Accelerator) -> str:
    device = accelerator.device
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    procs = f", {accelerator.num_processes} processes" if accelerator.num_processes > 1 else ""
    return f"{what}{procs}, torch {torch.__version__}, mixed precision {accelerator.mixed_precision}"


def command(module: str) -> str:
    """The exact command that ran, as a reader would retype it."""
    return shlex.join(["python", "-m", module, *sys.argv[1:]])


@dataclass
class CardInfo:
    """Everything a model card states; `write_model_card` lays it out."""

    name: str
    title: str
    summary: str  # what the model is, in two or three sentences
    data: str  # where the data came from and its licence
    split: str  # how train / val / test were made
    metrics: dict[str, float]  # measured on held-out data
    metric_notes: dict[str, str]  # one line per metric saying what it measures
    command: str
    wall_time_s: float
    hardware: str
    limits: str
    usage: str  # a few lines of Python that load and run the checkpoint
    license: str = "mit"
    tags: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    extra: str = ""  # any further section, markdown
    metrics_heading: str = "Metrics (held-out data the model never saw)"
    library_name: str = "pytorch"  # "transformers" for a checkpoint that loads with AutoModel


def write_model_card(folder: Path, info: CardInfo) -> None:
    card_data = ModelCardData(
        license=info.license,
        library_name=info.library_name,
        tags=sorted({"model-show", *info.tags, *(["pytorch_model_hub_mixin"] if info.library_name == "pytorch" else [])}),
        datasets=info.datasets or None,
    )
    metric_rows = "\n".join(
        f"| `{k}` | {v:.4f} | {info.metric_notes.get(k, '')} |"
        if isinstance(v, float)
        else f"| `{k}` | {v} | {info.metric_notes.get(k, '')} |"
        for k, v in info.metrics.items()
    )
    minutes = info.wall_time_s / 60
    body = f"""
# {info.title} (`{info.name}`)

{info.summary}

Part of **Model Show**, a tabbed Gradio app with every model from a beginner's tour of deep learning.

## {info.metrics_heading}

| metric | value | what it measures |
| --- | --- | --- |
{metric_rows}

## Data

{info.data}

**Split.** {info.split}

## Training

```bash
{info.command}
```

- Wall time: {info.wall_time_s:.0f} s ({minutes:.1f} min)
- Hardware: {info.hardware}

## Use

```python
{info.usage}
```

## Limits

{info.limits}
{info.extra}
## Licence

Weights: {info.license.upper()}. Data licences as stated above.
"""
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")
    card.save(folder / "README.md")


def save_checkpoint(
    model: torch.nn.Module,
    out_dir: Path,
    card: CardInfo,
    history: list[dict[str, float]],
) -> None:
    """Write the Hub layout: config.json + model.safetensors (save_pretrained), the card,
    metrics.json (what the tests hold the checkpoint to) and training_log.json (the curves the app shows)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # let the fresh card replace an old one
    write_model_card(out_dir, card)
    model.save_pretrained(out_dir)  # keeps our README.md: the mixin never overwrites a card
    (out_dir / "metrics.json").write_text(json.dumps(card.metrics, indent=2) + "\n")
    (out_dir / "training_log.json").write_text(json.dumps(history, indent=1) + "\n")


def push_checkpoint(folder: Path, repo_id: str, token: str | None = None) -> str:
    """Upload exactly the checkpoint folder to a Hub model repo (created if needed); returns its URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="Upload from Model Show training")
    return f"https://huggingface.co/{repo_id}"


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
