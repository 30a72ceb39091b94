"""Dimba configurations (src/models/dimba/config.ts), without torch so that the FLOP formulas
(flops.py) can use them anywhere."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Dict, List, Optional


@dataclass
class DimbaConfig:
    hidden_size: int
    depth: int
    num_heads: int
    input_size: int = 32
    patch_size: int = 2
    in_channels: int = 4
    mlp_ratio: float = 4.0
    mamba_ratio: float = 1.0
    layers: Optional[str] = None
    layer_repeats: int = 1
    learn_sigma: bool = True
    caption_channels: int = 4096
    caption_tokens: int = 120
    class_dropout_prob: float = 0.1
    pe_interpolation: float = 1.0
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2


PRESETS: Dict[str, DimbaConfig] = {
    "Dimba-XS": DimbaConfig(hidden_size=64, depth=2, num_heads=4, caption_channels=64, caption_tokens=16),
    "Dimba-S": DimbaConfig(hidden_size=192, depth=6, num_heads=6, caption_channels=256, caption_tokens=32),
    "Dimba-B": DimbaConfig(hidden_size=384, depth=12, num_heads=6, caption_channels=512, caption_tokens=64),
    "Dimba-L-2": DimbaConfig(hidden_size=1152, depth=28, num_heads=16),
    "Dimba-G-2": DimbaConfig(hidden_size=1408, depth=40, num_heads=16),
}


def preset_config(name: str, **overrides) -> DimbaConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown Dimba preset {name!r}; known: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def layer_pattern(c: DimbaConfig) -> List[str]:
    """'A' (Transformer) / 'M' (Mamba) order, as layerPattern in config.ts."""
    if c.layers is not None:
        pattern = list(c.layers * c.layer_repeats)
        if pattern.count("A") != c.depth:
            raise ValueError(f"layers {c.layers!r} x {c.layer_repeats} has {pattern.count('A')} Transformer blocks, depth is {c.depth}")
        return pattern
    mamba_depth = math.floor(c.mamba_ratio * c.depth)
    if mamba_depth == 0:
        return ["A"] * c.depth
    gap = c.depth // mamba_depth
    out: List[str] = []
    for i in range(c.depth):
        out.append("A")
        if gap == 1 or i % gap == 1:
            out.append("M")
    return out
