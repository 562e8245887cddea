"""The whole benchmark table on a CUDA GPU, in one short script.

    python -m benchmarks.gpu                          # every entry, written to benchmarks/gpu.json
    python -m benchmarks.gpu --only digit-gan text    # some entries

The same measurements as `benchmarks.run` (quality on held-out data, model latency, API latency through
gradio_client), with every model loaded on the GPU (MODEL_SHOW_DEVICE=cuda) and GPU timings synchronised.
It refuses to run without CUDA, so a CPU number never lands in the GPU table by mistake.
"""

import argparse
import os
import sys
from pathlib import Path

GPU_JSON = Path(__file__).resolve().parent / "gpu.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="run just these entries (names as in benchmarks.run)")
    parser.add_argument("--json", type=Path, default=GPU_JSON, help=f"where the results go (default: {GPU_JSON})")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("No CUDA GPU here: benchmarks.gpu only runs on a GPU (use benchmarks.run on the CPU).", file=sys.stderr)
        return 2
    os.environ["MODEL_SHOW_DEVICE"] = "cuda"  # before any model loads: models/hub.py reads it at load time
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    from benchmarks import run

    run.main([*(["--only", *args.only] if args.only else []), "--json", str(args.json)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
