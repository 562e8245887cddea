"""A class-conditional diffusion model for digits, built from diffusers parts (Ho et al. 2020; Song et al. 2021).

Training adds Gaussian noise to a real digit, a random amount of it (a timestep t of 1,000), and
the `UNet2DModel` learns to predict that noise from the noisy picture, t and the digit's label.
Drawing runs it backwards: start from pure noise and remove a little predicted noise per step
(DDIM, DPM-Solver++ or UniPC, 4 to 100 steps instead of the 1,000 of training).

Classifier-free guidance (Ho & Salimans 2022): during training the label is replaced by an extra
"no label" class part of the time, so the same network also predicts noise unconditionally. When
drawing, the two predictions are pushed apart, eps = eps_uncond + w (eps_cond - eps_uncond); a
scale w above 1 trades variety for digits that look more like their class.

The checkpoint is plain diffusers: `UNet2DModel.from_pretrained(folder)` and
`DDPMScheduler.from_pretrained(folder)` load it with no code from this project.
"""

import math
import re
import time
from dataclasses import dataclass

import torch

# diffusers is imported inside the functions: importing it takes seconds, and the app must start fast.

NULL_CLASS = 10  # the "no label" class used for classifier-free guidance
IMAGE_SIZE = 32  # 28x28 MNIST digits padded by 2 px each side: three halvings need a multiple of 8
PAD = (IMAGE_SIZE - 28) // 2
# UI name -> diffusers class. DPM-Solver++ is the second-order multistep solver ("2M", Lu et al. 2022); UniPC is
# the predictor-corrector of Zhao et al. 2023. Both need fewer steps than DDIM for the same quality.
SAMPLERS = {"DDIM": "DDIMScheduler", "DPM-Solver++": "DPMSolverMultistepScheduler", "UniPC": "UniPCMultistepScheduler"}
MIN_STEPS, MAX_STEPS = 4, 100

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


def make_sampler(scheduler_config: dict, sampler: str, steps: int, first_timestep: int | None = None):
    """A diffusers sampler for `steps` denoising steps, built from the training schedule's config.

    first_timestep=None spaces the steps the diffusers way ("leading": 960, 920, ... 0 for 25 DDIM steps), which
    starts ever lower as steps get fewer (750 for 4), while drawing always starts from pure noise. A number starts
    every sampler there and spaces the steps evenly down to the clean end ("trailing" over a schedule cut at that
    step; Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed"). The cosine schedule's
    very last steps are no start: ᾱ at 999 is 2e-9, and an estimate of the clean digit divides by its root."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, not {sampler!r}")
    import diffusers

    if first_timestep is None:
        config, spacing = scheduler_config, "leading"
    else:
        total = int(scheduler_config["num_train_timesteps"])
        if not 0 < first_timestep < total:
            raise ValueError(f"first_timestep must be in 1 ... {total - 1}, not {first_timestep}")
        # Same betas, so the same ᾱ_t for every t up to first_timestep: the U-Net sees the timesteps it was trained on.
        betas = diffusers.DDPMScheduler.from_config(scheduler_config).betas[: first_timestep + 1]
        # A config that diffusers made in memory lists the settings it left at their defaults (_use_default_values),
        # and from_config would reset trained_betas with them: drop that list.
        config = {key: value for key, value in scheduler_config.items() if key != "_use_default_values"}
        config |= {"trained_betas": betas.tolist(), "num_train_timesteps": first_timestep + 1}
        spacing = "trailing"
    scheduler = getattr(diffusers, SAMPLERS[sampler]).from_config(config, timestep_spacing=spacing)
    scheduler.set_timesteps(steps)
    return scheduler


def predict_noise(unet, x: torch.Tensor, t, labels: torch.Tensor, guidance: float, bf16: bool = False) -> torch.Tensor:
    """The U-Net's noise estimate for x (B, 1, 32, 32) at timestep t, float32.

    With classifier-free guidance (any scale but 1) the batch runs twice in one pass, with the labels and with
    NULL_CLASS, and the two estimates are pushed apart: eps_uncond + guidance * (eps_cond - eps_uncond)."""
    device = x.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if guidance == 1.0:  # plain conditional model: one pass instead of two
            return unet(x, t, class_labels=labels).sample.float()
        both = torch.cat([labels, torch.full_like(labels, NULL_CLASS)])
        eps_cond, eps_uncond = unet(torch.cat([x, x]), t, class_labels=both).sample.float().chunk(2)
    return eps_uncond + guidance * (eps_cond - eps_uncond)


def clean_estimate(noisy: torch.Tensor, noise: torch.Tensor, alpha_bar) -> torch.Tensor:
    """x̂0 = (x_t - sqrt(1 - ᾱ_t) eps) / sqrt(ᾱ_t): the clean picture that x_t and a noise estimate imply (Ho et al. 2020, eq. 15)."""
    alpha_bar = torch.as_tensor(alpha_bar, dtype=noisy.dtype)
    return (noisy - (1 - alpha_bar).sqrt() * noise) / alpha_bar.sqrt()


@dataclass
class DenoisingStep:
    """One step of the reverse process, for one batch; pictures are (B, 1, 32, 32) in the model's range."""

    index: int  # 0 for the first step
    timestep: int  # the training timestep the U-Net was told, 999 (pure noise) down to 0
    sample: torch.Tensor  # x after this step: the picture the next step starts from
    clean_guess: torch.Tensor  # x̂0: the finished digit this step's noise estimate implies


def denoising_steps(unet, scheduler, x: torch.Tensor, labels: torch.Tensor, guidance: float, bf16: bool = False, timesteps=None):
    """Run the reverse process from x over `timesteps` (all of the scheduler's by default), yielding a DenoisingStep
    after each U-Net pass; the caller can show it at once or keep it."""
    alphas = scheduler.alphas_cumprod  # the training schedule ᾱ_t, t = 0 ... 999, whatever the spacing
    for index, t in enumerate(scheduler.timesteps if timesteps is None else timesteps):
        eps = predict_noise(unet, scheduler.scale_model_input(x, t), t, labels, guidance, bf16)
        guess = clean_estimate(x, eps, alphas[int(t)])
        x = scheduler.step(eps, t, x).prev_sample
        yield DenoisingStep(index=index, timestep=int(t), sample=x, clean_guess=guess)


def sdedit_start(scheduler, clean: torch.Tensor, strength: float, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SDEdit (Meng et al. 2022): noise a picture (B, 1, 32, 32) part of the way and denoise from there.

    strength in [0, 1] is the share of the sampler's steps that run: 0 keeps the picture as it is (no step runs),
    1 starts from almost pure noise. Returns (the noised picture, the timesteps left to run)."""
    total = len(scheduler.timesteps)
    run = min(total, int(total * float(strength)))
    if run == 0:
        return clean, scheduler.timesteps[:0]
    begin = total - run
    timesteps = scheduler.timesteps[begin:]
    if hasattr(scheduler, "set_begin_index"):  # multistep solvers count their own steps: start them part-way
        scheduler.set_begin_index(begin)
    return scheduler.add_noise(clean, noise, timesteps[:1]), timesteps


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
    first_timestep: int | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Draw one digit per label: ((N, 1, 28, 28) in [0, 1], frames).

    frames (only with keep_frames): per step, the model's current guess of the finished digit
    (x0 prediction), (N, 1, 28, 28) in [0, 1], so the animation shows the picture emerging.
    The noise comes from `seed` alone, so the same seed, labels and settings give the same digits.
    bf16: run the U-Net under bfloat16 autocast (about twice as fast on CPUs with bf16 instructions);
    the scheduler's arithmetic stays in float32. first_timestep: where the steps start (see make_sampler).
    """
    device = next(unet.parameters()).device
    noise = starting_noise(len(labels), seed)
    outputs, frames = [], []
    for start in range(0, len(labels), batch_size):
        scheduler = make_sampler(scheduler_config, sampler, steps, first_timestep)
        x = noise[start : start + batch_size].to(device) * scheduler.init_noise_sigma  # (b, 1, 32, 32)
        chunk_frames = []
        for step in denoising_steps(unet, scheduler, x, labels[start : start + batch_size].to(device), guidance, bf16):
            x = step.sample
            if keep_frames:
                chunk_frames.append(to_digit_range(step.clean_guess).cpu())
        outputs.append(to_digit_range(x).cpu())
        frames.append(chunk_frames)
    merged_frames = [torch.cat([f[i] for f in frames]) for i in range(len(frames[0]))] if keep_frames else []
    return torch.cat(outputs), merged_frames


@dataclass
class NoisedDigit:
    """The forward process at one step t for one digit; pictures are (1, 1, 28, 28) in [0, 1], noises (1, 1, 28, 28)."""

    t: int  # 0 (the clean digit) to 1000 (pure noise)
    alpha_bar: float  # ᾱ_t: the share of the signal's power left; 1 - ᾱ_t is the noise's
    noisy: torch.Tensor  # x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) eps
    true_noise: torch.Tensor  # eps, the standard normal noise that was added
    predicted_noise: torch.Tensor  # the U-Net's estimate of eps from x_t and t alone (not told the digit)
    clean_guess: torch.Tensor  # x̂0 from x_t and the predicted noise
    noise_error: float  # mean squared error of the predicted noise: the training loss, at this t

    @property
    def snr(self) -> float:
        return self.alpha_bar / (1 - self.alpha_bar) if self.alpha_bar < 1 else float("inf")


@torch.inference_mode()
def forward_process(unet, scheduler_config: dict, digit: torch.Tensor, t: int, seed: int = 0) -> NoisedDigit:
    """Noise a digit (1, 1, 28, 28) in [0, 1] to step t of the training schedule and ask the model what it was.

    t counts as in the DDPM paper: 0 is the clean digit and t in 1 ... 1000 is the U-Net's timestep t - 1, so at t = 0
    nothing is added and x̂0 is the digit itself."""
    from diffusers import DDPMScheduler

    total = int(scheduler_config["num_train_timesteps"])
    if not 0 <= t <= total:
        raise ValueError(f"t must be in 0 ... {total}, not {t}")
    alpha_bar = 1.0 if t == 0 else float(DDPMScheduler.from_config(scheduler_config).alphas_cumprod[t - 1])
    device = next(unet.parameters()).device
    clean = to_model_range(digit.float()).to(device)  # (1, 1, 32, 32)
    noise = starting_noise(1, seed).to(device)
    noisy = alpha_bar**0.5 * clean + (1 - alpha_bar) ** 0.5 * noise
    predicted = predict_noise(unet, noisy, max(t - 1, 0), torch.full((1,), NULL_CLASS, device=device), guidance=1.0)
    guess = clean_estimate(noisy, predicted, alpha_bar)

    def crop(x):  # the 28x28 digit area, as the pictures are shown
        return x[:, :, PAD:-PAD, PAD:-PAD].cpu()

    return NoisedDigit(
        t=t,
        alpha_bar=alpha_bar,
        noisy=to_digit_range(noisy).cpu(),
        true_noise=crop(noise),
        predicted_noise=crop(predicted),
        clean_guess=to_digit_range(guess).cpu(),
        noise_error=float(((predicted - noise) ** 2).mean()),
    )


def snr_words(alpha_bar: float) -> str:
    """The signal-to-noise ratio ᾱ / (1 - ᾱ) at a step, in words a learner can picture."""
    if alpha_bar >= 1:
        return "no noise at all: the picture is the digit itself"
    snr = alpha_bar / (1 - alpha_bar)
    decibels = 10 * math.log10(snr) if snr > 0 else float("-inf")
    if snr >= 10:
        feel = "the digit is plain to see through a light grain"
    elif snr >= 1:
        feel = "more signal than noise: the strokes still show"
    elif snr >= 0.1:
        feel = "more noise than signal: only a blurry blob of the digit is left"
    elif snr >= 0.005:
        feel = "almost all noise: a person sees nothing, yet the model can still guess the rough shape"
    else:
        feel = "pure noise, for all practical purposes: every digit looks the same here"
    return f"signal-to-noise ratio {snr:.3g} ({decibels:+.1f} dB): {feel}"


def unet_passes(steps: int, guidance: float) -> int:
    """U-Net passes one drawing costs: one per step, two with classifier-free guidance (batched as one call)."""
    return steps * (1 if guidance == 1.0 else 2)


def sweep_samplers(
    unet,
    scheduler_config: dict,
    judge,
    samplers: list[str],
    step_counts: list[int],
    guidances: list[float],
    per_class: int,
    first_timestep: int | None,
    bf16: bool,
    seed: int = 1,
    on_row=None,
) -> list[dict]:
    """Quality against U-Net passes: every sampler x guidance x step count draws `per_class` digits of each class and
    faces the judge twice, against the validation digits (`val_*`, for choosing settings) and the test digits (`test_*`,
    for reporting). on_row(row) is called after each row (for logs and saving as it goes)."""
    from models.digit_judge import judge_digits

    labels = torch.arange(10).repeat_interleave(per_class)
    rows = []
    for sampler in samplers:
        for guidance in guidances:
            for steps in step_counts:
                start = time.perf_counter()
                fakes, _ = sample_digits(
                    unet, scheduler_config, labels, steps=steps, guidance=guidance, seed=seed, sampler=sampler,
                    batch_size=250, bf16=bf16, first_timestep=first_timestep,
                )  # fmt: skip
                row = {
                    "sampler": sampler,
                    "steps": steps,
                    "guidance": guidance,
                    "passes": unet_passes(steps, guidance),
                    "ms_per_digit": round((time.perf_counter() - start) * 1000 / len(labels), 3),
                }
                for reference in ("val", "test"):
                    scores = judge_digits(fakes, labels, judge, seed=seed, reference=reference)
                    row |= {f"{reference}_{key}": round(value, 4) for key, value in scores.items()}
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def choose_sampling(rows: list[dict], min_accuracy: float = 0.95, fid_tolerance: float = 1.15) -> dict:
    """The cheapest row of a sweep that is as good as the best, judged on the validation digits only.

    Good enough: validation class accuracy at least min_accuracy and validation Fréchet distance at most fid_tolerance
    times the lowest in the sweep. Of those, the fewest U-Net passes wins, then the lower distance."""
    best_fid = min(r["val_fid_digits"] for r in rows)
    good = [r for r in rows if r["val_class_accuracy"] >= min_accuracy and r["val_fid_digits"] <= fid_tolerance * best_fid]
    if not good:
        raise ValueError("no row of the sweep reaches the accuracy bar")
    return min(good, key=lambda r: (r["passes"], r["val_fid_digits"]))
