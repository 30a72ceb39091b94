"""Mamba-1 selective scan in plain PyTorch: a slow exact loop and a fast chunked formulation.

Semantics (mamba_ssm's selective_scan_fn, and src/ops/scan.ts of the TypeScript engine):
    delta' = softplus(delta + delta_bias)            (softplus only when delta_softplus)
    h_t    = exp(delta'_t A) * h_{t-1} + delta'_t B_t u_t      (per channel d, state n)
    y_t    = sum_n C_t[n] h_t[n] + D u_t
    out    = y * silu(z)                                       (when z is given)
Shapes: u, delta, z [batch, dim, L]; A [dim, N]; B, C [batch, N, L] or [batch, G, N, L] (G groups
of dim / G channels); D, delta_bias [dim]. The state is float32; out has u's dtype.

Why this formulation (the fastest we could write in PyTorch without a custom kernel)
----------------------------------------------------------------------------------
The recurrence is linear and diagonal, so with a_t = exp(delta'_t A) and x_t = delta'_t B_t u_t,
h_t = a_t h_{t-1} + x_t has the closed form h_t = sum_{s<=t} exp(S_t - S_s) x_s with
S_t = sum_{r<=t} log a_r. Over a whole sequence exp(-S_s) overflows float32 (S reaches -1000s),
so the sequence is cut into chunks of T <= 8 steps:
  * inside a chunk: S = cumsum(delta' A) (log space, no products of small numbers), then
    h = exp(S - m) * cumsum(exp(m - S) x) with m the chunk's middle value of S, which halves
    the dynamic range;
  * each step's log decay is floored at -20 (a_t >= 2e-9), so no exponent exceeds 4 * 20 = 80
    (float32's exp overflows past 88) whatever the step sizes. A decay below e^-20 and one of
    exactly e^-20 differ by at most 2e-9 of the previous state: below float32's resolution
    (6e-8) of the new one, so the floor changes nothing a float32 scan could represent (its
    gradient is dropped with it: at most 2e-9 relative too);
  * across chunks: the chunk-end states and total log decays form the same recurrence over L/T
    steps, solved with a Hillis-Steele doubling scan in log space for the decay (only sums of
    non-positive numbers and products by factors <= 1: never overflows);
  * every chunk then adds exp(S) times the state carried in from the chunks before.
Every step is a handful of large elementwise/cumsum kernels (no Python loop over L), which eager
PyTorch runs at memory bandwidth and torch.compile fuses further. A sequential loop over L would
be exact for any range but launches L kernels per scan (and unrolls L times under compile);
the loop is kept as the reference (`impl='loop'`, and selective_scan_ref).

Memory: like mamba_ssm, the autograd Function saves only its inputs and recomputes the states in
backward; the [rows, L, N] float32 work tensors exist only inside one call, and the batch is cut
into slices so that they stay below `slice_elems` elements each.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Elements of one [batch slice, dim, L, N] float32 work tensor (about 9 are alive at once in
# backward): 2^27 -> 512 MiB each.
DEFAULT_SLICE_ELEMS = 1 << 27
# Chunk length and per-step log-decay floor: exponents stay within (T/2) * 20 <= 80 (see above).
MAX_CHUNK = 8
DEFAULT_CHUNK = 8
LOG_DECAY_FLOOR = -20.0
IMPLS = ("chunked", "assoc", "loop")


# --------------------------------------------------------------------------------------------
# Linear recurrences h_t = exp(log_a_t) * h_{t-1} + x_t along dim -2 of [..., L, N], h_{-1} = 0.
# --------------------------------------------------------------------------------------------

def linrec_loop(log_a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sequential reference: one step per position (exact, slow)."""
    a = torch.exp(log_a)
    h = torch.zeros_like(x[..., 0, :])
    out = []
    for t in range(x.shape[-2]):
        h = a[..., t, :] * h + x[..., t, :]
        out.append(h)
    return torch.stack(out, dim=-2)


def linrec_doubling(log_a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Hillis-Steele scan: log2(L) steps, each combining every element with the one k before.

    Combine rule for the pair (decay, state): (A1, h1) then (A2, h2) -> (A1 + A2, h2 + exp(A2) h1)
    with decays kept as log sums, so nothing overflows. Costs O(L log L) work: used for the
    short chunk-carry recurrence."""
    n = x.shape[-2]
    la, h = log_a, x
    k = 1
    while k < n:
        h = torch.cat([h[..., :k, :], h[..., k:, :] + torch.exp(la[..., k:, :]) * h[..., :-k, :]], dim=-2)
        la = torch.cat([la[..., :k, :], la[..., k:, :] + la[..., :-k, :]], dim=-2)
        k *= 2
    return h


def linrec_chunked(log_a: torch.Tensor, x: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Chunked closed form (see the module docstring)."""
    *lead, length, n = x.shape
    pad = (-length) % chunk
    if pad:
        # Padding steps decay by exp(0) = 1 and add 0; they come after every real step.
        log_a = F.pad(log_a, (0, 0, 0, pad))
        x = F.pad(x, (0, 0, 0, pad))
    nc = (length + pad) // chunk
    la = log_a.reshape(*lead, nc, chunk, n)
    xx = x.reshape(*lead, nc, chunk, n)
    s = torch.cumsum(la, dim=-2)
    mid = s[..., chunk // 2:chunk // 2 + 1, :]
    # One exp per element: e = exp(S - m), and exp(m - S) x = x / e. (In place where a fresh
    # tensor allows: eager PyTorch moves every operand through memory once per kernel.)
    e = torch.sub(s, mid).exp_()
    h = torch.cumsum(torch.div(xx, e), dim=-2).mul_(e)
    if nc > 1:
        # State at the end of each chunk including everything before it, then shifted by one chunk:
        # the state each chunk starts from; it enters as exp(S) * start = e * (exp(m) * start).
        carried = linrec_doubling(s[..., -1, :], h[..., -1, :])
        start = F.pad(carried[..., :-1, :], (0, 0, 1, 0)).unsqueeze(-2)
        h.addcmul_(e, torch.exp(mid) * start)
    h = h.reshape(*lead, nc * chunk, n)
    return h[..., :length, :] if pad else h


def linrec_assoc(log_a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """torch's associative_scan higher-order op: under torch.compile, Inductor emits one Triton
    scan kernel (tl.associative_scan) with the exp and the combine fused into it."""
    from torch._higher_order_ops.associative_scan import associative_scan  # torch >= 2.5

    def combine(left, right):
        la1, h1 = left
        la2, h2 = right
        return la1 + la2, h2 + torch.exp(la2) * h1

    return associative_scan(combine, (log_a, x), dim=x.ndim - 2, combine_mode="pointwise")[1]


def linrec(log_a: torch.Tensor, x: torch.Tensor, impl: str, chunk: int) -> torch.Tensor:
    if impl == "chunked":
        return linrec_chunked(log_a, x, chunk)
    if impl == "loop":
        return linrec_loop(log_a, x)
    if impl == "assoc":
        return linrec_assoc(log_a, x)
    raise ValueError(f"selective scan: unknown impl {impl!r}; use one of {', '.join(IMPLS)}")


def linrec_reverse(log_a: torch.Tensor, c: torch.Tensor, impl: str, chunk: int) -> torch.Tensor:
    """lam_t = c_t + exp(log_a_{t+1}) lam_{t+1}, lam_{L} = 0: the adjoint of linrec."""
    shifted = F.pad(log_a[..., 1:, :], (0, 0, 0, 1))
    return torch.flip(linrec(torch.flip(shifted, (-2,)), torch.flip(c, (-2,)), impl, chunk), (-2,))


# --------------------------------------------------------------------------------------------
# The scan, forward and backward, on [b, G, Dg, L, N] work tensors.
# --------------------------------------------------------------------------------------------

def _work_dtype(u: torch.Tensor) -> torch.dtype:
    """float64 inputs (gradient checks) keep float64; everything else computes in float32."""
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _grouped(t: torch.Tensor, work: torch.dtype) -> torch.Tensor:
    """B or C [b, N, L] / [b, G, N, L] -> [b, G, 1, L, N] (broadcast over the group's channels)."""
    if t.dim() == 3:
        t = t.unsqueeze(1)
    return t.to(work).transpose(-1, -2).unsqueeze(2)


def _prepare(u, delta, A, B, C, delta_bias, softplus):
    work = _work_dtype(u)
    b, dim, length = u.shape
    groups = 1 if B.dim() == 3 else B.shape[1]
    dg = dim // groups
    dt = delta.to(work)
    if delta_bias is not None:
        dt = dt + delta_bias.to(work)[:, None]
    d_eff = F.softplus(dt) if softplus else dt
    d5 = d_eff.reshape(b, groups, dg, length)
    a5 = A.to(work).reshape(groups, dg, 1, -1)
    log_a = (d5.unsqueeze(-1) * a5).clamp_(min=LOG_DECAY_FLOOR)   # [b, G, Dg, L, N]
    du = (d_eff * u.to(work)).reshape(b, groups, dg, length)
    return dt, d5, a5, log_a, du, _grouped(B, work), _grouped(C, work), groups, dg, work


def _forward_slice(u, delta, A, B, C, D, z, delta_bias, softplus, impl, chunk):
    b, dim, length = u.shape
    _, _, _, log_a, du, bg, cg, _, _, work = _prepare(u, delta, A, B, C, delta_bias, softplus)
    h = linrec(log_a, du.unsqueeze(-1) * bg, impl, chunk)
    y = (h * cg).sum(-1).reshape(b, dim, length)
    if D is not None:
        y = y + D.to(work)[:, None] * u.to(work)
    if z is not None:
        y = y * F.silu(z.to(work))
    return y.to(u.dtype)


def _backward_slice(g, u, delta, A, B, C, D, z, delta_bias, softplus, impl, chunk):
    b, dim, length = u.shape
    dt, d5, a5, log_a, du, bg, cg, groups, dg, work = _prepare(u, delta, A, B, C, delta_bias, softplus)
    h = linrec(log_a, du.unsqueeze(-1) * bg, impl, chunk)
    uf = u.to(work)
    g = g.to(work)
    grads = {}
    if z is not None:
        zf = z.to(work)
        sig = torch.sigmoid(zf)
        y = (h * cg).sum(-1).reshape(b, dim, length)
        if D is not None:
            y = y + D.to(work)[:, None] * uf
        grads["z"] = g * y * sig * (1 + zf * (1 - sig))
        gy = g * zf * sig
    else:
        gy = g
    gu = torch.zeros_like(uf)
    if D is not None:
        grads["D"] = (gy * uf).sum((0, 2))
        gu = gy * D.to(work)[:, None]
    gy5 = gy.reshape(b, groups, dg, length)
    # dLoss/dC_t[n] = sum over the group's channels of gy_t h_t[n]. (Products and sums rather than
    # einsum: einsum would permute the large operand into a bmm; torch.compile fuses these.)
    grads["C"] = (h * gy5.unsqueeze(-1)).sum(2).transpose(-1, -2)
    # Adjoint state lam_t = dLoss/dh_t, and dLoss/dlog_a_t = lam_t h_{t-1} a_t.
    lam = linrec_reverse(log_a, gy5.unsqueeze(-1) * cg, impl, chunk)
    # exp(log_a), zero where the floor cut the decay (its gradient goes with it); the products
    # with h_{t-1} are written for t >= 1 without materialising a shifted copy of h.
    a = torch.exp(log_a).masked_fill_(log_a <= LOG_DECAY_FLOOR, 0.0)
    if _compiling():
        g_log_a = lam * F.pad(h[..., :-1, :], (0, 0, 1, 0)) * a      # Inductor fuses this anyway
    else:
        g_log_a = torch.empty_like(lam)
        g_log_a[..., 0, :] = 0.0
        torch.mul(lam[..., 1:, :], h[..., :-1, :], out=g_log_a[..., 1:, :])
        g_log_a.mul_(a)
    del h, a
    lam_b = (lam * bg).sum(-1)                             # sum_n lam B  [b, G, Dg, L]
    grads["B"] = (lam * du.unsqueeze(-1)).sum(2).transpose(-1, -2)
    del lam
    u5 = uf.reshape(b, groups, dg, length)
    g_d_eff = lam_b * u5 + (g_log_a * a5).sum(-1)
    grads["A"] = (g_log_a * d5.unsqueeze(-1)).sum((0, 3)).reshape(dim, -1)
    del g_log_a
    gu = gu + (lam_b * d5).reshape(b, dim, length)
    g_dt = g_d_eff.reshape(b, dim, length)
    if softplus:
        g_dt = g_dt * torch.sigmoid(dt)
    grads["u"] = gu
    grads["delta"] = g_dt
    if delta_bias is not None:
        grads["delta_bias"] = g_dt.sum((0, 2))
    return grads


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def _slices(batch: int, per_sample: int, slice_elems: int):
    step = max(1, min(batch, slice_elems // max(per_sample, 1)))
    return [(s, min(s + step, batch)) for s in range(0, batch, step)]


def _no_autocast(device_type: str):
    return torch.autocast(device_type=device_type, enabled=False)


class SelectiveScanFn(torch.autograd.Function):
    """Saves the inputs only; backward recomputes the states (as mamba_ssm does)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, softplus, impl, chunk, slice_elems):
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias)
        ctx.cfg = (softplus, impl, chunk, slice_elems)
        batch, dim, length = u.shape
        per_sample = dim * length * A.shape[1]
        with _no_autocast(u.device.type):
            parts = []
            for s, e in _slices(batch, per_sample, slice_elems):
                parts.append(_forward_slice(u[s:e], delta[s:e], A, B[s:e], C[s:e], D,
                                            None if z is None else z[s:e], delta_bias, softplus, impl, chunk))
            return parts[0] if len(parts) == 1 else torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, g):
        u, delta, A, B, C, D, z, delta_bias = ctx.saved_tensors
        softplus, impl, chunk, slice_elems = ctx.cfg
        batch, dim, length = u.shape
        per_sample = dim * length * A.shape[1]
        work = _work_dtype(u)
        acc = {"A": torch.zeros(A.shape, dtype=work, device=u.device)}
        if D is not None:
            acc["D"] = torch.zeros(dim, dtype=work, device=u.device)
        if delta_bias is not None:
            acc["delta_bias"] = torch.zeros(dim, dtype=work, device=u.device)
        rows = {k: [] for k in ("u", "delta", "B", "C", "z")}
        with _no_autocast(u.device.type):
            for s, e in _slices(batch, per_sample, slice_elems):
                gr = _backward_slice(g[s:e], u[s:e], delta[s:e], A, B[s:e], C[s:e], D,
                                     None if z is None else z[s:e], delta_bias, softplus, impl, chunk)
                for k in acc:
                    acc[k] = acc[k] + gr[k]
                for k in rows:
                    if k in gr:
                        rows[k].append(gr[k])

        # Every gradient is returned (autograd drops the unneeded ones): no ctx.needs_input_grad,
        # which keeps the backward simple to trace for torch.compile.
        def cat(k, like):
            if like is None:
                return None
            t = rows[k][0] if len(rows[k]) == 1 else torch.cat(rows[k], 0)
            return t.reshape(like.shape).to(like.dtype)

        def small(k, like):
            return None if like is None else acc[k].to(like.dtype)

        return (cat("u", u), cat("delta", delta), small("A", A), cat("B", B), cat("C", C), small("D", D),
                cat("z", z), small("delta_bias", delta_bias), None, None, None, None)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   impl: str = "chunked", chunk: int = DEFAULT_CHUNK,
                   slice_elems: int = DEFAULT_SLICE_ELEMS) -> torch.Tensor:
    if impl not in IMPLS:
        raise ValueError(f"selective scan: unknown impl {impl!r}; use one of {', '.join(IMPLS)}")
    if not 1 <= chunk <= MAX_CHUNK:
        raise ValueError(f"selective scan: chunk must be in [1, {MAX_CHUNK}] (exponents stay in float32 range), got {chunk}")
    if impl == "loop":
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, impl, chunk, slice_elems)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False) -> torch.Tensor:
    """The definition, step by step in the input's precision (float32 at least); autograd
    differentiates it directly. Slow: for tests and small checks."""
    dtype = u.dtype
    work = torch.float64 if dtype == torch.float64 else torch.float32
    b, dim, length = u.shape
    groups = 1 if B.dim() == 3 else B.shape[1]
    Bg = (B.unsqueeze(1) if B.dim() == 3 else B).to(work)
    Cg = (C.unsqueeze(1) if C.dim() == 3 else C).to(work)
    Bx = Bg.repeat_interleave(dim // groups, dim=1)         # [b, dim, N, L]
    Cx = Cg.repeat_interleave(dim // groups, dim=1)
    dt = delta.to(work)
    if delta_bias is not None:
        dt = dt + delta_bias.to(work)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    uf = u.to(work)
    Af = A.to(work)
    h = torch.zeros(b, dim, A.shape[1], dtype=work, device=u.device)
    ys = []
    for t in range(length):
        h = torch.exp(dt[:, :, t, None] * Af) * h + (dt[:, :, t] * uf[:, :, t])[..., None] * Bx[..., t]
        ys.append((h * Cx[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D.to(work)[:, None] * uf
    if z is not None:
        y = y * F.silu(z.to(work))
    return y.to(dtype)


def scan_flops(batch: int, dim: int, length: int, n_state: int) -> float:
    """Forward FLOPs counted as mamba_ssm's flops_selective_scan_fn: 9 per (b, d, t, n), plus the
    D skip and the z gate per (b, d, t)."""
    return 9.0 * batch * dim * length * n_state + 2.0 * batch * dim * length


def _selfcheck() -> None:  # pragma: no cover - quick manual check: python3 selective_scan.py
    torch.manual_seed(0)
    b, d, length, n = 2, 6, 37, 4
    u = torch.randn(b, d, length, dtype=torch.float64)
    delta = torch.randn(b, d, length, dtype=torch.float64) * 0.5
    A = -torch.rand(d, n, dtype=torch.float64) * 4
    B = torch.randn(b, n, length, dtype=torch.float64)
    C = torch.randn(b, n, length, dtype=torch.float64)
    ref = selective_scan_ref(u, delta, A, B, C, delta_softplus=True)
    got = selective_scan(u, delta, A, B, C, delta_softplus=True, chunk=8)
    print("max |chunked - ref|", float((ref - got.double()).abs().max()))


if __name__ == "__main__":  # pragma: no cover
    _selfcheck()
