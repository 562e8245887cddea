"""Load a shipped checkpoint by name: from `checkpoints/<name>`, or from the Hub.

    model = load(DigitClassifier, "digit-classifier")

* Source: the local folder `checkpoints/<name>` unless `MODEL_SHOW_HUB_NAMESPACE` is set, then
  the Hub repo `<namespace>/<name>` (with `HF_HUB_OFFLINE=1` it resolves from the local cache).
* Strict: every weight name must match, so a renamed layer fails loudly instead of quietly
  running with random weights.
* Device: cuda, then mps, then cpu (`MODEL_SHOW_DEVICE` overrides), in eval mode.
* Cached: each (class, name) loads once per process; concurrent first requests wait for one load.
"""

import os
import threading
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = REPO_ROOT / "checkpoints"

_cache: dict[tuple[type | str, str], torch.nn.Module] = {}
_lock = threading.Lock()


class CheckpointError(RuntimeError):
    """A checkpoint is missing or cannot be loaded; the message says how to make it."""


def training_command(name: str) -> str:
    return f"python -m training.train_{name.replace('-', '_')}"


def pick_device() -> torch.device:
    forced = os.environ.get("MODEL_SHOW_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def hub_namespace() -> str:
    """MODEL_SHOW_HUB_NAMESPACE, or "" when models come from the local checkpoints/ folder."""
    return os.environ.get("MODEL_SHOW_HUB_NAMESPACE", "").strip().strip("/")


def source(name: str) -> str:
    """Where `name` is read from: a local folder path or a Hub repo id."""
    namespace = hub_namespace()
    return f"{namespace}/{name}" if namespace else str(CHECKPOINTS / name)


def load(model_cls: type, name: str) -> torch.nn.Module:
    """The cached, strictly loaded, eval-mode model `name` on the best device."""
    key = (model_cls, name)
    model = _cache.get(key)
    if model is not None:
        return model
    with _lock:
        if key not in _cache:
            _cache[key] = _load_uncached(model_cls, name)
        return _cache[key]


def _load_uncached(model_cls: type, name: str) -> torch.nn.Module:
    where = source(name)
    if not hub_namespace() and not (Path(where) / "model.safetensors").is_file():
        raise CheckpointError(
            f"The '{name}' model is missing: {where}/model.safetensors does not exist. "
            f"Train it with `{training_command(name)}`, or set MODEL_SHOW_HUB_NAMESPACE to load it from the Hub."
        )
    device = pick_device()
    try:
        model = model_cls.from_pretrained(where, strict=True, map_location=str(device))
    except Exception as err:  # corrupt file, shape or name mismatch, Hub or cache miss
        raise CheckpointError(
            f"The '{name}' model at {where} could not be loaded ({type(err).__name__}: {err}). Retrain it with `{training_command(name)}`."
        ) from err
    return model.to(device).eval()


def load_causal_lm(name: str) -> torch.nn.Module:
    """Like `load`, for a checkpoint saved the transformers way (`AutoModelForCausalLM`).

    Eager attention, not SDPA: only eager returns the attention weights the Text tab draws, and on a
    model this small the two write equally fast."""

    def read(where: str) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, attn_implementation="eager")

    return _load_library_model("transformers", name, "model.safetensors", read)


def load_diffusion_unet(name: str) -> torch.nn.Module:
    """Like `load`, for a checkpoint saved the diffusers way (`UNet2DModel.from_pretrained`)."""

    def read(where: str) -> torch.nn.Module:
        from diffusers import UNet2DModel

        return UNet2DModel.from_pretrained(where)

    return _load_library_model("diffusers", name, "diffusion_pytorch_model.safetensors", read)


def _load_library_model(library: str, name: str, weights_file: str, read) -> torch.nn.Module:
    """Cached, eval-mode, on the best device: `read(where)` does the library's own from_pretrained
    (which is strict: transformers and diffusers refuse missing weights and report unexpected ones)."""
    key = (library, name)
    model = _cache.get(key)
    if model is not None:
        return model
    with _lock:
        if key not in _cache:
            where = source(name)
            if not hub_namespace() and not (Path(where) / weights_file).is_file():
                raise CheckpointError(
                    f"The '{name}' model is missing: {where}/{weights_file} does not exist. "
                    f"Train it with `{training_command(name)}`, or set MODEL_SHOW_HUB_NAMESPACE to load it from the Hub."
                )
            try:
                model = read(where)
            except Exception as err:
                raise CheckpointError(
                    f"The '{name}' model at {where} could not be loaded ({type(err).__name__}: {err}). "
                    f"Retrain it with `{training_command(name)}`."
                ) from err
            _cache[key] = model.to(pick_device()).eval()
        return _cache[key]


def load_companion(load_file, name: str, filename: str) -> torch.nn.Module:
    """A second network that ships in checkpoint `name` as the safetensors file `filename` (the GAN's discriminator
    beside its generator): `load_file(path)` builds and strictly loads it; cached, on the best device, in eval mode."""
    key = (filename, name)
    model = _cache.get(key)
    if model is not None:
        return model
    with _lock:
        if key not in _cache:
            path = checkpoint_file(name, filename)
            if path is None:
                raise CheckpointError(f"The '{name}' checkpoint has no {filename}. Retrain it with `{training_command(name)}`.")
            try:
                _cache[key] = load_file(str(path)).to(pick_device()).eval()
            except Exception as err:  # corrupt file, shape or name mismatch
                raise CheckpointError(
                    f"{filename} of the '{name}' model could not be loaded ({type(err).__name__}: {err}). "
                    f"Retrain it with `{training_command(name)}`."
                ) from err
        return _cache[key]


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def checkpoint_file(name: str, filename: str) -> Path | None:
    """A file that travels with checkpoint `name` (training_log.json, metrics.json, ...), or None."""
    where = source(name)
    if not hub_namespace():
        path = Path(where) / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(where, filename))
    except Exception:  # not on the Hub, not in the offline cache: the caller shows less, not an error
        return None
