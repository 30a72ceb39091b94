"""Dimba (Transformer + bidirectional Mamba, PixArt-alpha style) in plain PyTorch: the reference
for issue 7's speed comparison, written from the TypeScript model in src/models/dimba/*.ts.

Parameter names, shapes and formulas follow that implementation so that a state dict saved by it
(safetensors, see bench/cuda/export-check.ts) loads here with strict=True:
  pos_embed (buffer), x_embedder.proj, t_embedder.mlp.{0,2}, t_block.1, y_embedder.y_proj.{fc1,fc2},
  y_embedder.y_embedding (buffer), blocks.{i}.{scale_shift_table, attn.{qkv,proj},
  cross_attn.{q_linear,kv_linear,proj}, mlp.{fc1,fc2}}, final_layer.{scale_shift_table, linear},
  mamba_blocks.{j}.mixer.{A_log, D, A_b_log, D_b, in_proj, conv1d, x_proj, dt_proj, conv1d_b,
  x_proj_b, dt_proj_b, out_proj}, mamba_blocks.{j}.norm.weight.

Speed choices: self-attention through F.scaled_dot_product_attention with a selectable backend
(cuDNN, flash, memory-efficient, math); the selective scan from selective_scan.py (chunked
closed form with recomputation in backward). Mixed precision is the usual PyTorch recipe: float32
parameters under torch.autocast(bfloat16); the Mamba residual stream stays float32 and A, D and
the step-size bias enter the scan in float32, as mamba_ssm does.

Not covered (not used by Dimba-L-2/G-2): qk-norm, KV compression, micro-conditions, drop path.
"""
from __future__ import annotations

import contextlib
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dimba_config import DimbaConfig, layer_pattern
from selective_scan import DEFAULT_CHUNK, DEFAULT_SLICE_ELEMS, selective_scan

# --------------------------------------------------------------------------------------------
# Attention backends
# --------------------------------------------------------------------------------------------

SDPA_CHOICES = ("cudnn", "flash", "efficient", "math", "default")


def _sdpa_backends(choice: str):
    """The SDPBackend list for a model call, in priority order. Flash attention takes no mask, and
    cuDNN's may not take ours: the memory-efficient kernel follows as the one fallback (the
    caption cross-attention's key-padding mask), never the math path."""
    from torch.nn.attention import SDPBackend
    table = {
        "cudnn": [SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION],
        "flash": [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION],
        "efficient": [SDPBackend.EFFICIENT_ATTENTION],
        "math": [SDPBackend.MATH],
    }
    return table[choice]


def sdpa_context(choice: str):
    """Selects the attention kernels for everything run inside it. Entered around whole model
    calls (not per attention call) so that torch.compile traces under the same selection."""
    if choice == "default" or not hasattr(F, "scaled_dot_product_attention"):
        return contextlib.nullcontext()
    try:
        from torch.nn.attention import sdpa_kernel
    except ImportError:  # torch < 2.3
        return contextlib.nullcontext()
    try:
        return sdpa_kernel(_sdpa_backends(choice), set_priority=True)
    except TypeError:  # no set_priority before torch 2.6: PyTorch's own order among the listed
        return sdpa_kernel(_sdpa_backends(choice))


def attention(q, k, v, key_padding: Optional[torch.Tensor]) -> torch.Tensor:
    """q [B, H, Lq, E], k/v [B, H, Lk, E]; key_padding [B, Lk] bool (True = real token)."""
    mask = None if key_padding is None else key_padding[:, None, None, :]
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    # torch < 2.0 (CPU checks only): the definition.
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v


# --------------------------------------------------------------------------------------------
# Embedders, blocks (embedders.ts, attention.ts, transformer-block.ts, final-layer.ts)
# --------------------------------------------------------------------------------------------


def sincos_pos_embed(dim: int, grid_h: int, grid_w: int, base_size: float, pe_interpolation: float) -> torch.Tensor:
    """[1, gh*gw, dim] float32 (pos-embed.ts): token m = h*W + w; channels [sin(pw w), cos(pw w),
    sin(ph w), cos(ph w)], w_d = 10000^(-d / (dim/4)); coordinates rounded to float32 as released."""
    if dim % 4:
        raise ValueError(f"sincos_pos_embed: dim must be a multiple of 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)

    def coords(n: int) -> np.ndarray:
        # As pos-embed.ts: each step rounded to float32 from a float64 quotient.
        c = np.array([np.float32(i / (n / base_size)) for i in range(n)], dtype=np.float64)
        return (c / pe_interpolation).astype(np.float32).astype(np.float64)

    pw = np.tile(coords(grid_w), grid_h)          # w varies fastest
    ph = np.repeat(coords(grid_h), grid_w)
    aw = pw[:, None] * omega[None]
    ah = ph[:, None] * omega[None]
    emb = np.concatenate([np.sin(aw), np.cos(aw), np.sin(ah), np.cos(ah)], axis=1).astype(np.float32)
    return torch.from_numpy(emb).unsqueeze(0)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(t f), sin(t f)], f_i = exp(-ln(max_period) i / half), in float32 (float64 stays)."""
    work = torch.float64 if t.dtype == torch.float64 else torch.float32
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=work, device=t.device) * (-math.log(max_period) / half))
    args = t.to(work)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_channels: int, hidden: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_size: int = 256):
        super().__init__()
        self.freq_size = freq_size
        self.mlp = nn.Sequential(nn.Linear(freq_size, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t):
        return self.mlp(timestep_embedding(t, self.freq_size).to(self.mlp[0].weight.dtype))


class CaptionEmbedder(nn.Module):
    def __init__(self, channels: int, hidden: int, tokens: int):
        super().__init__()
        self.y_proj = Mlp(channels, hidden, hidden)
        self.register_buffer("y_embedding", torch.randn(tokens, channels) / math.sqrt(channels))

    def drop(self, caption, drop):
        return torch.where(drop[:, None, None], self.y_embedding.to(caption.dtype)[None], caption)

    def forward(self, caption):
        return self.y_proj(caption)


def _split_heads(x, heads):
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).permute(0, 2, 1, 3)


def _merge_heads(x):
    b, h, n, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, n, h * d)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(_merge_heads(attention(q, k, v, None)))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, cond, mask):
        b, l, c = cond.shape
        q = _split_heads(self.q_linear(x), self.heads)
        k, v = self.kv_linear(cond).reshape(b, l, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(_merge_heads(attention(q, k, v, mask)))


class TransformerBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden, heads)
        self.cross_attn = CrossAttention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden, int(hidden * mlp_ratio), hidden)
        self.scale_shift_table = nn.Parameter(torch.randn(6, hidden) / hidden ** 0.5)

    def forward(self, x, y, t0, mask):
        b, _, c = x.shape
        mods = self.scale_shift_table[None] + t0.reshape(b, 6, c)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods.chunk(6, dim=1)
        x = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + self.cross_attn(x, y, mask)
        return x + gate_mlp * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, patch: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden) / hidden ** 0.5)

    def forward(self, x, t):
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


# --------------------------------------------------------------------------------------------
# Mamba block (mamba.ts)
# --------------------------------------------------------------------------------------------


@dataclass
class ScanSettings:
    impl: str = "chunked"
    chunk: int = DEFAULT_CHUNK
    slice_elems: int = DEFAULT_SLICE_ELEMS
    # False: under torch.compile the scan stays eager (a graph break around it). Compiling the
    # chunked scan's training graph ran out of 139 GiB on an H200 at L-2 256 px B32 (eager needs
    # ~46 GiB), and the substituted figures replace the scan's time anyway.
    compiled: bool = False


def _outside_compile(fn):
    """fn kept out of torch.compile's graphs (torch < 2.1 has no torch.compiler: nothing to keep out of)."""
    disable = getattr(getattr(torch, "compiler", None), "disable", None)
    return disable(fn) if disable is not None else fn


@_outside_compile
def _eager_selective_scan(*args, **kwargs):
    return selective_scan(*args, **kwargs)


class BiMambaMixer(nn.Module):
    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int):
        super().__init__()
        di = expand * d_model
        self.d_inner, self.d_state, self.dt_rank = di, d_state, math.ceil(d_model / 16)
        a_log = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(di, 1)
        # Registration order = the TypeScript (and released) state-dict order.
        self.A_log = nn.Parameter(a_log.clone())
        self.D = nn.Parameter(torch.ones(di))
        self.A_b_log = nn.Parameter(a_log.clone())
        self.D_b = nn.Parameter(torch.ones(di))
        self.in_proj = nn.Linear(d_model, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1)
        self.x_proj = nn.Linear(di, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, di)
        self.conv1d_b = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1)
        self.x_proj_b = nn.Linear(di, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj_b = nn.Linear(self.dt_rank, di)
        self.out_proj = nn.Linear(di, d_model, bias=False)
        self.scan = ScanSettings()
        for proj in (self.dt_proj, self.dt_proj_b):
            # mamba_ssm's dt init (init.ts keeps it): bias = softplus^-1(dt), dt log-uniform in [1e-3, 0.1].
            nn.init.uniform_(proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
            dt = torch.exp(torch.rand(di) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
            with torch.no_grad():
                proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def _direction(self, xz, conv, x_proj, dt_proj, a_log, d):
        length = xz.shape[-1]
        x, z = xz.chunk(2, dim=1)
        u = F.silu(conv(x)[..., :length])                                        # causal: first L outputs
        dbc = F.linear(u.transpose(1, 2), x_proj.weight)                         # [B, L, R + 2N]
        dt, b_mat, c_mat = torch.split(dbc, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, dt_proj.weight).transpose(1, 2)                     # [B, Di, L]; bias in the scan
        s = self.scan
        scan = selective_scan if s.compiled else _eager_selective_scan
        return scan(u, delta, -torch.exp(a_log.float()), b_mat.transpose(1, 2), c_mat.transpose(1, 2),
                              D=d.float(), z=z, delta_bias=dt_proj.bias.float(), delta_softplus=True,
                              impl=s.impl, chunk=s.chunk, slice_elems=s.slice_elems)

    def forward(self, h):
        xz = self.in_proj(h).transpose(1, 2)                                     # [B, 2Di, L]
        yf = self._direction(xz, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)
        yb = self._direction(xz.flip(-1), self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b)
        return self.out_proj((yf + yb.flip(-1)).transpose(1, 2))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.to(x.dtype)


class MambaBlock(nn.Module):
    """residual (float32) += hidden; hidden = mixer(rmsnorm(residual)); both travel on."""

    def __init__(self, d_model: int, d_state: int, d_conv: int, expand: int):
        super().__init__()
        self.mixer = BiMambaMixer(d_model, d_state, d_conv, expand)
        self.norm = RMSNorm(d_model, eps=1e-5)

    def forward(self, hidden, residual: Optional[torch.Tensor]):
        h32 = hidden.float()
        res = h32 if residual is None else residual + h32
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            normed = self.norm(res).to(hidden.dtype)
        return self.mixer(normed), res


# --------------------------------------------------------------------------------------------
# The model (model.ts)
# --------------------------------------------------------------------------------------------


class Dimba(nn.Module):
    def __init__(self, config: DimbaConfig):
        super().__init__()
        c = self.config = config
        self.pattern = layer_pattern(c)
        self.out_channels = 2 * c.in_channels if c.learn_sigma else c.in_channels
        self.base_size = c.input_size // c.patch_size
        hidden = c.hidden_size
        self.x_embedder = PatchEmbed(c.patch_size, c.in_channels, hidden)
        self.t_embedder = TimestepEmbedder(hidden)
        self.register_buffer("pos_embed", sincos_pos_embed(hidden, self.base_size, self.base_size, self.base_size, c.pe_interpolation))
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))
        self.y_embedder = CaptionEmbedder(c.caption_channels, hidden, c.caption_tokens)
        n_attn = self.pattern.count("A")
        self.blocks = nn.ModuleList([TransformerBlock(hidden, c.num_heads, c.mlp_ratio) for _ in range(n_attn)])
        self.final_layer = FinalLayer(hidden, c.patch_size, self.out_channels)
        self.mamba_blocks = nn.ModuleList([MambaBlock(hidden, c.d_state, c.d_conv, c.expand)
                                           for _ in range(len(self.pattern) - n_attn)])
        self._pos_cache: Dict[Tuple[int, int, str, torch.dtype], torch.Tensor] = {}
        self.sdpa = "default"
        self._init_like_typescript()

    def _init_like_typescript(self):
        """init.ts's scheme (xavier Linear, zero cross-attention proj and final layer, N(0, 0.02)
        embedders, out_proj/fc2 rescaled by sqrt(#Mamba blocks)); the values differ (another RNG)."""
        dt_projs = {id(m.mixer.dt_proj) for m in self.mamba_blocks} | {id(m.mixer.dt_proj_b) for m in self.mamba_blocks}
        for m in self.modules():
            if isinstance(m, nn.Linear) and id(m) not in dt_projs:
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        for lin in (self.t_embedder.mlp[0], self.t_embedder.mlp[2], self.t_block[1], self.y_embedder.y_proj.fc1, self.y_embedder.y_proj.fc2):
            nn.init.normal_(lin.weight, std=0.02)
        for blk in self.blocks:
            nn.init.zeros_(blk.cross_attn.proj.weight)
            nn.init.zeros_(blk.cross_attn.proj.bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)
        n_layer = max(len(self.mamba_blocks), 1)
        for m in self.modules():
            target = m.out_proj.weight if isinstance(m, BiMambaMixer) else m.fc2.weight if isinstance(m, Mlp) else None
            if target is not None:
                nn.init.kaiming_uniform_(target, a=math.sqrt(5))
                with torch.no_grad():
                    target.div_(math.sqrt(n_layer))

    # Settings that are not parameters: attention backend and scan formulation.
    def set_sdpa(self, choice: str) -> "Dimba":
        if choice not in SDPA_CHOICES:
            raise ValueError(f"sdpa must be one of {', '.join(SDPA_CHOICES)}, got {choice!r}")
        self.sdpa = choice
        return self

    def set_scan(self, impl: str, chunk: int = DEFAULT_CHUNK, slice_elems: int = DEFAULT_SLICE_ELEMS,
                 compiled: bool = False) -> "Dimba":
        for m in self.modules():
            if isinstance(m, BiMambaMixer):
                m.scan = ScanSettings(impl, chunk, slice_elems, compiled)
        return self

    def pos_embedding(self, gh: int, gw: int, device, dtype) -> torch.Tensor:
        key = (gh, gw, str(device), dtype)
        pos = self._pos_cache.get(key)
        if pos is None:
            c = self.config
            pos = sincos_pos_embed(c.hidden_size, gh, gw, self.base_size, c.pe_interpolation).to(device=device, dtype=dtype)
            self._pos_cache[key] = pos
        return pos

    def forward(self, x, timestep, caption, caption_mask=None, force_drop=None):
        with sdpa_context(self.sdpa):
            return self._forward(x, timestep, caption, caption_mask, force_drop)

    def _forward(self, x, timestep, caption, caption_mask, force_drop):
        c = self.config
        dtype = self.x_embedder.proj.weight.dtype
        x = x.to(dtype)
        b, _, h, w = x.shape
        gh, gw = h // c.patch_size, w // c.patch_size
        x = self.x_embedder(x) + self.pos_embedding(gh, gw, x.device, dtype)
        t = self.t_embedder(timestep.to(dtype))
        t0 = self.t_block(t)
        caption = caption.to(dtype)
        drop = force_drop
        if self.training and c.class_dropout_prob > 0:
            rnd = torch.rand(b, device=x.device) < c.class_dropout_prob
            drop = rnd if drop is None else (drop | rnd)
        if drop is not None:
            caption = self.y_embedder.drop(caption, drop)
        y = self.y_embedder(caption)
        mask = None if caption_mask is None else caption_mask.to(torch.bool)
        residual = None
        ai = mi = 0
        for kind in self.pattern:
            if kind == "A":
                x = self.blocks[ai](x, y, t0, mask)
                ai += 1
            else:
                x, residual = self.mamba_blocks[mi](x, residual)
                mi += 1
        return self.unpatchify(self.final_layer(x, t), gh, gw)

    def unpatchify(self, x, gh: int, gw: int):
        p, c = self.config.patch_size, self.out_channels
        b = x.shape[0]
        return x.reshape(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, gh * p, gw * p)

    def compile_blocks(self, **options) -> "Dimba":
        """Regional compilation: each Transformer and Mamba block compiled on its own (identical
        blocks share the compiled code), which compiles in a fraction of a whole-model compile."""
        for blk in list(self.blocks) + list(self.mamba_blocks):
            blk.compile(**options)
        return self


# --------------------------------------------------------------------------------------------
# Diffusion pieces (src/diffusion/schedule.ts, dpm-solver.ts, spacing.ts)
# --------------------------------------------------------------------------------------------


def linear_alphas_cumprod(n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    betas = np.linspace(beta_start, beta_end, n, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def dpm_timesteps(steps: int, n: int = 1000) -> List[int]:
    """'linspace' spacing: round-half-even(linspace(0, n-1, steps+1)) from the top, without the final 0."""
    ts = [int(v) for v in np.round(np.linspace(0, n - 1, steps + 1))][::-1]
    return ts[:steps]


@dataclass
class DPMSolver:
    """DPM-Solver++(2M), data prediction, midpoint, lower order first and final step to sigma 0."""
    steps: int
    abar: np.ndarray = field(default_factory=linear_alphas_cumprod)

    def point(self, t: int):
        a = float(self.abar[t])
        return math.sqrt(a), math.sqrt(1 - a), 0.5 * (math.log(a) - math.log1p(-a))

    def sample(self, eps_fn, x: torch.Tensor) -> torch.Tensor:
        ts = dpm_timesteps(self.steps, len(self.abar))
        prev = None
        for i, t in enumerate(ts):
            alpha, sigma, lam = self.point(t)
            eps = eps_fn(x, t)
            x0 = (x - sigma * eps) / alpha
            if i == len(ts) - 1:
                return x0
            n_alpha, n_sigma, n_lam = self.point(ts[i + 1])
            h = n_lam - lam
            d = x0
            if prev is not None:
                r = (lam - prev[1]) / h
                d = x0 * (1 + 1 / (2 * r)) - prev[0] * (1 / (2 * r))
            prev = (x0, lam)
            x = x * (n_sigma / sigma) + d * (-n_alpha * math.expm1(-h))
        return x


# --------------------------------------------------------------------------------------------
# safetensors: the library when installed, else a small reader (the CPU checks on machines
# without it). Format: u64 header length, JSON header {name: {dtype, shape, data_offsets}}, data.
# --------------------------------------------------------------------------------------------

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}


def load_safetensors(path: str) -> Dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return load_file(path)
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        buf = bytearray(data[base + s:base + e])
        t = torch.frombuffer(buf, dtype=_ST_DTYPES[info["dtype"]]) if buf else torch.empty(0, dtype=_ST_DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out
