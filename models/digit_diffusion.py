"""A class-conditional diffusion model for digits, built from diffusers parts (Ho et al. 2020; Song et al. 2021).

Training adds Gaussian noise to a real digit, a random amount of it (a timestep t of 1,000), and
the `UNet2DModel` learns to predict that noise from the noisy picture, t and the digit's label.
Drawing runs it backwards: start from pure noise and remove a little predicted noise per step
(DDIM or DPM-Solver, 10 to 50 steps instead of the 1,000 of training).

Classifier-free guidance (Ho & Salimans 2022): during training the label is replaced by an extra
"no label" class part of the time, so the same network also predicts noise unconditionally. When
drawing, the two predictions are pushed apart, eps = eps_uncond + w (eps_cond - eps_uncond); a
scale w above 1 trades variety for digits that look more like their class.

The checkpoint is plain diffusers: `UNet2DModel.from_pretrained(folder)` and
`DDPMScheduler.from_pretrained(folder)` load it with no code from this project.
"""

import re

import torch

# diffusers is imported inside the functions: importing it takes seconds, and the app must start fast.

NULL_CLASS = 10  # the "no label" class used for classifier-free guidance
IMAGE_SIZE = 32  # 28x28 MNIST digits padded by 2 px each side: three halvings need a multiple of 8
PAD = (IMAGE_SIZE - 28) // 2
SAMPLERS = {"DDIM": "DDIMScheduler", "DPM-Solver++": "DPMSolverMultistepScheduler"}  # UI name -> diffusers class
MIN_STEPS, MAX_STEPS = 5, 100

NUMBER_WORDS = {
    "zero": 0, "nought": 0, "naught": 0, "nil": 0,
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
# Words a prompt may wrap around the digit: "a 3", "the digit seven", "draw number 8 please".
FILLER_WORDS = {"a", "an", "the", "digit", "number", "numeral", "draw", "me", "write", "please", "handwritten", "of", "some"}


class PromptError(ValueError):
    """The prompt names no digit, or several; the message says what is accepted."""


def parse_prompt(prompt: str) -> int:
    """'seven', 'A 3', 'the digit Nine', '7' -> the digit; anything else raises PromptError."""
    text = str(prompt or "").strip().lower()
    if not text:
        raise PromptError("Type a digit to draw, as a word or a numeral: 'seven', '7' or 'a 3'.")
    tokens = re.findall(r"[a-z]+|\d+|\S", text)
    found, word_one = [], False
    for token in tokens:
        if token.isdigit():
            if len(token) != 1:
                raise PromptError(f"'{token}' is not a single digit. The model draws one digit, 0 to 9: try '{token[0]}'.")
            found.append(int(token))
        elif token == "one":  # the digit, or the filler in "draw me one 7": decided once every token is read
            word_one = True
        elif token in NUMBER_WORDS:
            found.append(NUMBER_WORDS[token])
        elif token not in FILLER_WORDS and token not in {".", "!", ",", "?", "'", '"'}:
            raise PromptError(
                f"The model only knows the digits 0 to 9, and '{token}' is not one of them. "
                "Type a digit as a word or a numeral: 'seven', '7' or 'a 3'."
            )
    digits = sorted(set(found)) or ([1] if word_one else [])
    if not digits:
        raise PromptError("Name one digit, as a word or a numeral: 'seven', '7' or 'a 3'.")
    if len(digits) > 1:
        raise PromptError(f"The prompt names several digits ({', '.join(map(str, digits))}); name just one.")
    return digits[0]


def build_unet(channels: tuple[int, ...] = (32, 64, 128), layers_per_block: int = 1):
    """A small denoiser (diffusers UNet2DModel): 32x32 -> 16x16 -> 8x8 and back, no attention, 10 digit classes + NULL_CLASS."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=IMAGE_SIZE,
        in_channels=1,
        out_channels=1,
        block_out_channels=tuple(channels),
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * len(channels),
        up_block_types=("UpBlock2D",) * len(channels),
        add_attention=False,  # digits are small enough for convolutions to see whole strokes at 8x8
        num_class_embeds=NULL_CLASS + 1,
        norm_num_groups=8,
    )


def build_scheduler():
    """The training noise schedule (diffusers DDPMScheduler); samplers are made from its config."""
    from diffusers import DDPMScheduler

    # The cosine schedule (Nichol & Dhariwal 2021) spends fewer steps on pictures that are already pure noise.
    # No clipping of the predicted clean picture: with guidance, the early guesses (t near 1,000) are far
    # outside [-1, 1], and clipping them each step erased the label's pull (guidance 3 drew the right digit
    # 18 times in 100 with clipping, 97 without, 3,000 steps into training).
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon", clip_sample=False)


def to_model_range(digits: torch.Tensor) -> torch.Tensor:
    """(B, 1, 28, 28) in [0, 1] -> (B, 1, 32, 32) in [-1, 1], black border (as in MNIST)."""
    return torch.nn.functional.pad(digits * 2 - 1, (PAD, PAD, PAD, PAD), value=-1.0)


def to_digit_range(samples: torch.Tensor) -> torch.Tensor:
    """(B, 1, 32, 32) in about [-1, 1] -> (B, 1, 28, 28) in [0, 1]."""
    return ((samples[:, :, PAD:-PAD, PAD:-PAD] + 1) / 2).clamp(0, 1)


def starting_noise(count: int, seed: int) -> torch.Tensor:
    """The pure noise drawing starts from, (count, 1, 32, 32): fixed by the seed alone."""
    return torch.randn(count, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


@torch.inference_mode()
def sample_digits(
    unet,
    scheduler_config: dict,
    labels: torch.Tensor,
    steps: int = 25,
    guidance: float = 3.0,
    seed: int = 0,
    sampler: str = "DDIM",
    keep_frames: bool = False,
    batch_size: int = 500,
    bf16: bool = False,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Draw one digit per label: ((N, 1, 28, 28) in [0, 1], frames).

    frames (only with keep_frames): per step, the model's current guess of the finished digit
    (x0 prediction), (N, 1, 28, 28) in [0, 1], so the animation shows the picture emerging.
    The noise comes from `seed` alone, so the same seed, labels and settings give the same digits.
    bf16: run the U-Net under bfloat16 autocast (about twice as fast on CPUs with bf16 instructions);
    the scheduler's arithmetic stays in float32.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, not {sampler!r}")
    import diffusers

    device = next(unet.parameters()).device
    noise = starting_noise(len(labels), seed)
    outputs, frames = [], []
    for start in range(0, len(labels), batch_size):
        scheduler = getattr(diffusers, SAMPLERS[sampler]).from_config(scheduler_config)
        scheduler.set_timesteps(steps)
        x = noise[start : start + batch_size].to(device) * scheduler.init_noise_sigma  # (b, 1, 32, 32)
        cond = labels[start : start + batch_size].to(device)
        both = torch.cat([cond, torch.full_like(cond, NULL_CLASS)])
        chunk_frames = []
        for t in scheduler.timesteps:
            model_in = scheduler.scale_model_input(x, t)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                if guidance == 1.0:  # plain conditional model: one pass instead of two
                    eps = unet(model_in, t, class_labels=cond).sample.float()
                else:
                    eps_cond, eps_uncond = unet(torch.cat([model_in, model_in]), t, class_labels=both).sample.float().chunk(2)
                    eps = eps_uncond + guidance * (eps_cond - eps_uncond)
            step = scheduler.step(eps, t, x)
            x = step.prev_sample
            if keep_frames:
                guess = getattr(step, "pred_original_sample", None)
                chunk_frames.append(to_digit_range(guess if guess is not None else x).cpu())
        outputs.append(to_digit_range(x).cpu())
        frames.append(chunk_frames)
    merged_frames = [torch.cat([f[i] for f in frames]) for i in range(len(frames[0]))] if keep_frames else []
    return torch.cat(outputs), merged_frames
