"""Model FLOPs of Dimba and of attention, the formulas behind the MFU and TFLOP/s figures of
issue 7's benchmarks. bench/gpu/flops.ts computes the same numbers for the TypeScript side;
test/bench/flops.test.ts checks that both agree.

Convention (as PaLM's MFU and FlashAttention's TFLOP/s): 2 FLOPs per multiply-add of every
matrix product (linear layers, convolutions, attention scores and values); elementwise work
(norms, activations, modulation, softmax) is not counted. A training step counts 3x the
forward (the backward computes gradients for both operands of every product), an attention
forward+backward 3.5x its forward (two products forward, five backward). The selective scan
counts 9 FLOPs per (token, channel, state) plus 2 per (token, channel) for the D skip and the
z gate, as mamba_ssm's flops_selective_scan_fn does.

Per image, with N = (res / 8 / patch)^2 tokens, hidden C, caption tokens Lc of Cc channels,
MLP width M = C * mlp_ratio, Mamba width Di = expand * C, dt rank R = ceil(C / 16), S states,
conv width K:
  embed      2 N (4 p^2) C + 2 (256 C + C^2) + 2 C (6C) + 2 Lc (Cc C + C^2)
  attn block 2 N C (3C) + 4 N^2 C + 2 N C^2            self-attention
           + 2 N C^2 + 2 Lc C (2C) + 4 N Lc C + 2 N C^2  cross-attention
           + 4 N C M                                   MLP
  mamba blk  2 N C (2 Di) + 2 N Di C                   in_proj, out_proj
           + 2 x [2 N Di K + 2 N Di (R + 2S) + 2 N R Di + 9 N Di S + 2 N Di]   per direction
  final      2 N C (p^2 out_channels)

    python3 flops.py --preset Dimba-L-2 --res 256 [--json]
"""
from __future__ import annotations

import argparse
import json
import math
from typing import Dict

from dimba_config import DimbaConfig, layer_pattern, preset_config

H100_BF16_DENSE_TFLOPS = 989.0
LATENT_DOWNSAMPLE = 8
TIMESTEP_FREQUENCIES = 256


def dimba_forward_flops(c: DimbaConfig, res: int) -> Dict[str, float]:
    """Forward FLOPs per image at `res` pixels (latent res / 8), by part, and their total."""
    if res % (LATENT_DOWNSAMPLE * c.patch_size):
        raise ValueError(f"res {res} is not a multiple of {LATENT_DOWNSAMPLE * c.patch_size}")
    grid = res // LATENT_DOWNSAMPLE // c.patch_size
    n = grid * grid
    hid = c.hidden_size
    lc, cc = c.caption_tokens, c.caption_channels
    m = math.floor(hid * c.mlp_ratio)
    di = c.expand * hid
    r = math.ceil(hid / 16)
    s, k = c.d_state, c.d_conv
    out_ch = 2 * c.in_channels if c.learn_sigma else c.in_channels
    pattern = layer_pattern(c)
    n_attn = pattern.count("A")
    n_mamba = len(pattern) - n_attn
    embed = (2 * n * (c.in_channels * c.patch_size ** 2) * hid
             + 2 * (TIMESTEP_FREQUENCIES * hid + hid * hid) + 2 * hid * 6 * hid
             + 2 * lc * (cc * hid + hid * hid))
    attn = (2 * n * hid * 3 * hid + 4 * n * n * hid + 2 * n * hid * hid
            + 2 * n * hid * hid + 2 * lc * hid * 2 * hid + 4 * n * lc * hid + 2 * n * hid * hid
            + 4 * n * hid * m)
    scan = 9 * n * di * s + 2 * n * di
    direction = 2 * n * di * k + 2 * n * di * (r + 2 * s) + 2 * n * r * di + scan
    mamba = 2 * n * hid * 2 * di + 2 * n * di * hid + 2 * direction
    final = 2 * n * hid * c.patch_size ** 2 * out_ch
    total = embed + n_attn * attn + n_mamba * mamba + final
    return {
        "tokens": n, "embed": float(embed), "attention_block": float(attn), "mamba_block": float(mamba),
        "scan_per_direction": float(scan), "final": float(final), "attention_blocks": n_attn,
        "mamba_blocks": n_mamba, "forward": float(total), "train": 3.0 * total,
    }


def attention_flops(batch: int, heads: int, lq: int, lk: int, head_dim: int, backward: bool) -> float:
    """QK^T and PV: 4 B H Lq Lk E forward; forward+backward 3.5x that."""
    fwd = 4.0 * batch * heads * lq * lk * head_dim
    return 3.5 * fwd if backward else fwd


def mfu(train_flops_per_image: float, images_per_second: float, peak_tflops: float = H100_BF16_DENSE_TFLOPS) -> float:
    return train_flops_per_image * images_per_second / (peak_tflops * 1e12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="Dimba-L-2")
    ap.add_argument("--res", type=int, default=256)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    f = dimba_forward_flops(preset_config(a.preset), a.res)
    if a.json:
        print(json.dumps(f))
    else:
        for key, v in f.items():
            print(f"{key:20s} {v:.6g}")


if __name__ == "__main__":
    main()
