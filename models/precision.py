"""Whether bf16 autocast pays off on this CPU.

bf16 is only fast where the CPU has native bf16 instructions (AVX512-BF16, or AMX on newer Xeons). Elsewhere oneDNN
emulates it, and a U-Net convolution ran about 20 times slower than in float32 on an AVX2-only CPU (the free Space
hardware varies), so every bf16 path on the CPU asks here first.
"""

import torch


def cpu_has_native_bf16() -> bool:
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or amx())
