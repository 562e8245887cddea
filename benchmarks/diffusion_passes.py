"""Digit diffusion: quality against U-Net passes, for every sampler, with and without guidance.

    python -m benchmarks.diffusion_passes                       # the full table (about 35 min on 2 cores)
    python -m benchmarks.diffusion_passes --per-class 5 --steps 4 8 --json /tmp/passes.json   # a quick look

Each row draws `--per-class` digits of every class and faces the same judge as the GAN twice: against the
500 validation digits (`val_*`, the columns the tab's defaults are chosen on, `models.digit_diffusion.choose_sampling`)
and against the 1,000 test digits (`test_*`, the columns to report). The rows are saved as they come, so a run that
dies keeps what it measured. `--into-checkpoint` also writes the table beside the model (`sampler_sweep.json`),
where the card and the tab read it.
"""

import argparse
import json
from pathlib import Path

import torch

from models.digit_diffusion import SAMPLERS, choose_sampling, sweep_samplers
from models.precision import cpu_has_native_bf16

HERE = Path(__file__).resolve().parent
CHECKPOINT = "digit-diffusion"
FIRST_TIMESTEP = 960  # where the 25 DDIM steps of the checkpoint's first defaults start (ᾱ = 0.0037)


def markdown_table(rows: list[dict]) -> str:
    """The sweep as a markdown table (class accuracy is the same against either reference: the same digits)."""
    lines = [
        "| sampler | steps | guidance | U-Net passes | ms per digit | class accuracy | Fréchet distance (test) | diversity (test) "
        "| Fréchet distance (val) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r['guidance']} | {r['passes']} | {r['ms_per_digit']:.2f} "
            f"| {r['test_class_accuracy']:.3f} | {r['test_fid_digits']:.3f} | {r['test_diversity']:.3f} | {r['val_fid_digits']:.3f} |"
        )
    return "\n".join(lines)


def pivot_table(rows: list[dict], key: str, digits: int = 3) -> str:
    """One line per sampler and guidance, one column per step count: `key` of each row (e.g. test_fid_digits)."""
    steps = sorted({r["steps"] for r in rows})
    lines = ["| sampler, guidance | " + " | ".join(f"{n} steps" for n in steps) + " |", "| --- |" + " --- |" * len(steps)]
    for sampler, guidance in dict.fromkeys((r["sampler"], r["guidance"]) for r in rows):
        by_steps = {r["steps"]: r[key] for r in rows if (r["sampler"], r["guidance"]) == (sampler, guidance)}
        name = f"{sampler}, " + ("no guidance" if guidance == 1.0 else f"guidance {guidance}")
        lines.append(f"| {name} | " + " | ".join(f"{by_steps[n]:.{digits}f}" if n in by_steps else "" for n in steps) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=80, help="digits drawn per class for each row")
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    parser.add_argument("--steps", nargs="+", type=int, default=[4, 6, 8, 10, 15, 25, 50])
    parser.add_argument("--guidance", nargs="+", type=float, default=[1.0, 1.5], help="1 = no guidance")
    parser.add_argument("--first-timestep", type=int, default=FIRST_TIMESTEP, help="where every sampler starts")
    parser.add_argument("--json", type=Path, default=HERE / "diffusion_passes.json")
    parser.add_argument("--table", action="store_true", help="print the table of an earlier run (--json) and stop")
    parser.add_argument("--into-checkpoint", action="store_true", help="also write checkpoints/digit-diffusion/sampler_sweep.json")
    args = parser.parse_args()
    if args.table:
        rows = json.loads(args.json.read_text())["rows"]
        print(markdown_table(rows), pivot_table(rows, "test_fid_digits"), pivot_table(rows, "test_class_accuracy"), sep="\n\n")
        return

    from models import hub
    from models.digit_classifier import DigitClassifier

    unet = hub.load_diffusion_unet(CHECKPOINT)
    judge = hub.load(DigitClassifier, "digit-classifier").cpu()
    config = json.loads(hub.checkpoint_file(CHECKPOINT, "scheduler_config.json").read_text())
    bf16 = not torch.cuda.is_available() and cpu_has_native_bf16()  # as the app draws on a CPU
    settings = {
        "per_class": args.per_class,
        "first_timestep": args.first_timestep,
        "bf16": bf16,
        "seed": 1,
        "device": str(next(unet.parameters()).device),
        "threads": torch.get_num_threads(),
    }
    rows: list[dict] = []

    def save(row: dict) -> None:
        rows.append(row)
        print(
            f"{row['sampler']:>12} {row['steps']:>3} steps, guidance {row['guidance']}: {row['passes']:>3} passes, "
            f"val acc {row['val_class_accuracy']:.3f} fid {row['val_fid_digits']:.3f}, "
            f"test acc {row['test_class_accuracy']:.3f} fid {row['test_fid_digits']:.3f}",
            flush=True,
        )
        args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")

    sweep_samplers(
        unet,
        config,
        judge,
        args.samplers,
        args.steps,
        args.guidance,
        args.per_class,
        args.first_timestep,
        bf16,
        seed=1,
        on_row=save,
    )
    chosen = choose_sampling(rows)
    report = {"settings": settings, "rows": rows, "chosen": chosen}
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.into_checkpoint:
        (hub.CHECKPOINTS / CHECKPOINT / "sampler_sweep.json").write_text(json.dumps(report, indent=1) + "\n")
    print(markdown_table(rows))
    print(f"chosen on the validation digits: {chosen['sampler']}, {chosen['steps']} steps, guidance {chosen['guidance']}")


if __name__ == "__main__":
    main()
