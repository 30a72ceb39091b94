"""PyTorch reference benchmarks for issue 7 (run on the GPU machine next to our own benchmarks).

Modes (one JSON object per result line with --json; see bench/gpu/run.sh for the full run):
  --mode train     Dimba training step: bf16 autocast forward + epsilon MSE loss on a random
                   timestep + backward + fused AdamW, float32 parameters. Per resolution: step ms
                   (CUDA events, median after warm-up), images/s, peak torch.cuda.max_memory_allocated,
                   MFU (flops.py's formula over --peak-tflops), and the step with the selective scan's
                   measured time replaced by mamba_ssm's (GPU.md) figures.
  --mode sample    20 DPM-Solver++(2M) steps with classifier-free guidance (one batched call on
                   [uncond; cond] per step), seconds per image, and the same scan substitution.
  --scan-only      the selective scan alone, forward and forward+backward, on mamba_ssm's shapes.
  --attention      SDPA forward and forward+backward per backend on issue 7's shapes, TFLOP/s.
  --check W --inputs I
                   float32 forward on the weights and inputs bench/cuda/export-check.ts wrote;
                   prints the max |difference| from the output our implementation saved there.

  python3 bench.py --preset Dimba-L-2 --res 256,512 --batch 32,8 --mode train --compile 0 --sdpa cudnn --json
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dimba_config import preset_config  # noqa: E402
from dimba_ref import Dimba, DPMSolver, SDPA_CHOICES, attention, linear_alphas_cumprod, load_safetensors  # noqa: E402
from flops import H100_BF16_DENSE_TFLOPS, attention_flops, dimba_forward_flops, mfu  # noqa: E402
from selective_scan import DEFAULT_CHUNK, DEFAULT_SLICE_ELEMS, IMPLS, selective_scan, selective_scan_ref  # noqa: E402

# mamba_ssm's compiled selective scan on the H100 (../shared/GPU.md, 2026-11-25): one direction,
# bf16 u/delta/z, fp32 A, N = 16, Di = 2304, z gating, softplus; (forward ms, backward ms) by (B, L).
MAMBA_SSM_MS: Dict[Tuple[int, int], Tuple[float, float]] = {
    (16, 1024): (0.632, 2.688), (4, 4096): (0.662, 2.775), (1, 16384): (0.950, 3.105), (64, 256): (0.646, 3.215),
}
SCAN_SHAPES = [(16, 1024), (4, 4096), (1, 16384), (64, 256)]


def mamba_ssm_ms(batch: int, length: int, d_inner: int, n_state: int) -> Optional[Tuple[float, float]]:
    """mamba_ssm's (forward, backward) ms for this shape: the measured entry with the same L,
    scaled linearly in B and Di (the kernel is memory-bound: time follows the bytes); None when no
    entry has this L or N differs from the measured 16."""
    if n_state != 16:
        return None
    for (b, l), (f, bw) in MAMBA_SSM_MS.items():
        if l == length:
            s = (batch / b) * (d_inner / 2304)
            return f * s, bw * s
    return None


def caption_lengths(batch: int, tokens: int) -> List[int]:
    """Real tokens per caption, the same rule as bench/cuda/train-step.ts: tokens - (37 i mod 3/4 tokens)."""
    span = max(1, (3 * tokens) // 4)
    return [tokens - (37 * i) % span for i in range(batch)]


def caption_mask(batch: int, tokens: int, device) -> torch.Tensor:
    lengths = torch.tensor(caption_lengths(batch, tokens), device=device)
    return torch.arange(tokens, device=device)[None, :] < lengths[:, None]


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, warmup: int, reps: int) -> List[float]:
    """Milliseconds per call: CUDA events around each call (host perf_counter on the CPU)."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(reps):
        if device.type == "cuda":
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            out.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def median(xs: List[float]) -> float:
    return float(statistics.median(xs))


def peak_bytes(device: torch.device) -> Optional[int]:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_oom(e: BaseException) -> bool:
    return isinstance(e, getattr(torch.cuda, "OutOfMemoryError", ())) or "out of memory" in str(e)


def emit(args, record: dict) -> None:
    record = {"impl": "pytorch", "torch": torch.__version__, "device_name": device_name(args.device), **record}
    if args.json:
        print(json.dumps(record), flush=True)
    else:
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()), flush=True)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def configure_compile() -> None:
    """Static shapes per resolution and room for every block instance in Dynamo's caches."""
    cfg = torch._dynamo.config
    cfg.automatic_dynamic_shapes = False
    for name in ("cache_size_limit", "accumulated_cache_size_limit", "recompile_limit", "accumulated_recompile_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), 256))


# --------------------------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------------------------


def build(args, input_size: int) -> Dimba:
    cfg = preset_config(args.preset, input_size=input_size)
    torch.manual_seed(args.seed)
    ctx = torch.device(args.device) if hasattr(torch.device, "__enter__") else None
    if ctx is not None:
        with ctx:
            model = Dimba(cfg)
    else:
        model = Dimba(cfg)
    model = model.to(args.device)
    model.set_sdpa(args.sdpa).set_scan(args.scan_impl, args.scan_chunk, args.scan_slice, bool(args.compile_scan))
    if args.compile:
        configure_compile()
        model.compile_blocks(mode=args.compile_mode)
    return model


def scan_inputs(batch: int, d_inner: int, length: int, n_state: int, device, dtype=torch.bfloat16, grad=False):
    """Scan inputs as a Dimba mixer makes them: softplus(delta + bias) in mamba_ssm's initial range."""
    g = torch.Generator(device=device).manual_seed(0)

    def rnd(*shape, scale=1.0, dt=dtype):
        return (torch.randn(*shape, generator=g, device=device, dtype=torch.float32) * scale).to(dt).requires_grad_(grad)

    u = rnd(batch, d_inner, length)
    delta = rnd(batch, d_inner, length, scale=0.5)
    z = rnd(batch, d_inner, length)
    B = rnd(batch, n_state, length)
    C = rnd(batch, n_state, length)
    A = (-torch.arange(1, n_state + 1, device=device, dtype=torch.float32).repeat(d_inner, 1)).requires_grad_(grad)
    D = torch.ones(d_inner, device=device).requires_grad_(grad)
    dt = torch.exp(torch.rand(d_inner, generator=g, device=device) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    bias = (dt + torch.log(-torch.expm1(-dt))).requires_grad_(grad)
    return u, delta, A, B, C, D, z, bias


def scan_timing(args, batch: int, d_inner: int, length: int, n_state: int, impl: str, compiled: bool,
                warmup: int, reps: int, backward: bool = True) -> Tuple[float, float]:
    """(forward ms, backward ms) of one scan direction as the model runs it; backward = median of
    forward+backward minus median forward (a fresh forward each time, as in a training step)."""
    ins = scan_inputs(batch, d_inner, length, n_state, args.device, grad=backward)

    def run(u, delta, A, B, C, D, z, bias):
        return selective_scan(u, delta, A, B, C, D, z, bias, True, impl=impl, chunk=args.scan_chunk, slice_elems=args.scan_slice)

    if compiled:
        configure_compile()
    fn = torch.compile(run, mode=args.compile_mode) if compiled else run
    g = torch.randn(batch, d_inner, length, device=args.device, dtype=torch.bfloat16)
    with torch.no_grad():
        fwd = median(time_ms(lambda: fn(*ins), args.device, warmup, reps))
    if not backward:
        return fwd, 0.0
    both = median(time_ms(lambda: torch.autograd.grad(fn(*ins), [t for t in ins if t.requires_grad], g), args.device, warmup, reps))
    return fwd, max(both - fwd, 0.0)


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


def mode_train(args) -> None:
    resolutions, batches = args.res, args.batch
    model = build(args, input_size=resolutions[0] // 8)
    model.train()
    c = model.config
    abar = torch.tensor(linear_alphas_cumprod(), device=args.device, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.03, **({"fused": True} if args.device.type == "cuda" else {}))
    amp = args.device.type == "cuda"

    def make_step(b: int, latent: int):
        gen = torch.Generator(device=args.device).manual_seed(1)
        x0 = torch.randn(b, c.in_channels, latent, latent, device=args.device, generator=gen)
        caption = torch.randn(b, c.caption_tokens, c.caption_channels, device=args.device, generator=gen)
        mask = caption_mask(b, c.caption_tokens, args.device)

        def step():
            t = torch.randint(0, len(abar), (b,), device=args.device)
            noise = torch.randn_like(x0)
            a = abar[t].view(b, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
            with torch.autocast(device_type=args.device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(xt, t.float(), caption, mask)
            loss = F.mse_loss(out[:, :c.in_channels].float(), noise)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    for i, res in enumerate(resolutions):
        latent = res // 8
        tokens = (latent // c.patch_size) ** 2
        b = batches[min(i, len(batches) - 1)]
        if args.find_batch:
            b = find_batch(args, make_step, latent, args.find_batch[min(i, len(args.find_batch) - 1)],
                           lambda: opt.zero_grad(set_to_none=True))
            if b is None:
                emit(args, {"kind": "train", "res": res, "error": "no candidate batch fits"})
                continue
        step = make_step(b, latent)
        try:
            for _ in range(args.warmup):
                step()
            sync(args.device)
            reset_peak(args.device)
            times = time_ms(step, args.device, 0, args.steps)
        except RuntimeError as e:
            if not is_oom(e):
                raise
            step = None
            opt.zero_grad(set_to_none=True)
            free_memory(args.device)
            emit(args, {"kind": "train", "res": res, "batch": b, "compile": int(args.compile), "error": f"out of memory: {str(e)[:200]}"})
            continue
        step_ms = median(times)
        flops = dimba_forward_flops(c, res)
        rec = {
            "kind": "train", "preset": args.preset, "res": res, "batch": b, "compile": int(args.compile), "compile_scan": int(args.compile_scan),
            "sdpa": args.sdpa, "scan_impl": args.scan_impl, "step_ms": step_ms, "steps_ms": times,
            "images_per_s": b * 1000.0 / step_ms, "peak_bytes": peak_bytes(args.device),
            "train_flops_per_image": flops["train"], "mfu": mfu(flops["train"], b * 1000.0 / step_ms, args.peak_tflops),
        }
        step = None
        free_memory(args.device)
        rec.update(substitute_scan(args, model, b, tokens, step_ms, backward=True, calls=1))
        emit(args, rec)


def find_batch(args, make_step, latent: int, candidates: List[int], cleanup: Callable[[], None]) -> Optional[int]:
    """The largest candidate batch whose training step runs (two steps: the optimizer state exists
    from the first); candidates tried from the largest down. cleanup drops gradients a failed
    step left behind."""
    for b in sorted(candidates, reverse=True):
        step = None
        try:
            step = make_step(b, latent)
            step()
            step()
            sync(args.device)
            return b
        except RuntimeError as e:
            if not is_oom(e):
                raise
            cleanup()
        finally:
            del step
            free_memory(args.device)
    return None


def substitute_scan(args, model: Dimba, batch: int, tokens: int, total_ms: float, backward: bool, calls: int) -> dict:
    """The run's total with each selective-scan call's measured time replaced by mamba_ssm's.
    calls = model calls in total_ms; each has 2 scans (directions) per Mamba block."""
    if not model.mamba_blocks or args.device.type != "cuda":
        return {}
    mixer = model.mamba_blocks[0].mixer
    n_scans = 2 * len(model.mamba_blocks) * calls
    # The substitution subtracts n_scans (1120 per batch-1 sampling run) times this one call's time,
    # so its run-to-run spread is amplified: 3 repetitions gave 1.109 and 1.189 ms in two calls on
    # one H100 (0.405 vs 0.295 s/image substituted). 5 warm-up calls and the median of 25.
    ours = scan_timing(args, batch, mixer.d_inner, tokens, mixer.d_state, args.scan_impl, bool(args.compile and args.compile_scan), 5, max(25, args.steps), backward)
    theirs = mamba_ssm_ms(batch, tokens, mixer.d_inner, mixer.d_state)
    per_call = ours[0] + (ours[1] if backward else 0.0)
    out = {"scan_fwd_ms": ours[0], "scan_bwd_ms": ours[1] if backward else None, "scan_calls": n_scans,
           "scan_share": n_scans * per_call / total_ms}
    if theirs is not None:
        sub = theirs[0] + (theirs[1] if backward else 0.0)
        out["mamba_ssm_scan_ms"] = sub
        out["substituted_ms"] = max(total_ms - n_scans * per_call + n_scans * sub, 0.0)
    return out


def mode_sample(args) -> None:
    res = args.res[0]
    latent = res // 8
    model = build(args, input_size=latent)
    model.eval()
    c = model.config
    amp = args.device.type == "cuda"
    tokens = (latent // c.patch_size) ** 2
    for b in args.batch:
        gen = torch.Generator(device=args.device).manual_seed(2)
        cond = torch.randn(b, c.caption_tokens, c.caption_channels, device=args.device, generator=gen)
        caption = torch.cat([torch.zeros_like(cond), cond])
        mask = torch.cat([torch.ones(b, c.caption_tokens, dtype=torch.bool, device=args.device), caption_mask(b, c.caption_tokens, args.device)])
        drop = torch.cat([torch.ones(b, dtype=torch.bool, device=args.device), torch.zeros(b, dtype=torch.bool, device=args.device)])
        solver = DPMSolver(args.sample_steps)

        def eps_fn(x, t):
            tt = torch.full((2 * b,), float(t), device=args.device)
            with torch.autocast(device_type=args.device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(torch.cat([x, x]), tt, caption, mask, drop)
            e = out[:, :c.in_channels].float()
            un, co = e.chunk(2)
            return un + args.guidance * (co - un)

        def run():
            with torch.no_grad():
                x = torch.randn(b, c.in_channels, latent, latent, device=args.device, generator=gen)
                return solver.sample(eps_fn, x)

        reset_peak(args.device)
        times = time_ms(run, args.device, args.warmup, args.steps)
        run_ms = median(times)
        rec = {"kind": "sample", "preset": args.preset, "res": res, "batch": b, "compile": int(args.compile), "compile_scan": int(args.compile_scan), "sdpa": args.sdpa,
               "scan_impl": args.scan_impl, "sample_steps": args.sample_steps, "guidance": args.guidance,
               "run_ms": run_ms, "runs_ms": times, "seconds_per_image": run_ms / 1000.0 / b, "peak_bytes": peak_bytes(args.device)}
        sub = substitute_scan(args, model, 2 * b, tokens, run_ms, backward=False, calls=args.sample_steps)
        if "substituted_ms" in sub:
            sub["substituted_seconds_per_image"] = sub["substituted_ms"] / 1000.0 / b
        rec.update(sub)
        emit(args, rec)
        free_memory(args.device)


def mode_scan(args) -> None:
    d_inner, n_state = args.scan_dim, 16
    shapes = SCAN_SHAPES if not args.tiny else [(2, 64), (1, 128)]
    for impl in args.scan_impls:
        for batch, length in shapes:
            rec = {"kind": "scan", "impl_name": impl, "compile": int(args.compile), "batch": batch, "length": length,
                   "dim": d_inner, "n_state": n_state, "chunk": args.scan_chunk}
            try:
                fwd, bwd = scan_timing(args, batch, d_inner, length, n_state, impl, bool(args.compile), args.warmup, args.steps)
                rec.update({"fwd_ms": fwd, "bwd_ms": bwd})
                rec["max_abs_err"] = scan_error(args, batch, d_inner, length, n_state, impl)
            except Exception as e:  # a formulation this torch cannot run is reported, not fatal
                if is_oom(e):
                    free_memory(args.device)
                rec["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            ref = mamba_ssm_ms(batch, length, d_inner, n_state)
            if ref is not None:
                rec["mamba_ssm_fwd_ms"], rec["mamba_ssm_bwd_ms"] = ref
            emit(args, rec)


def scan_error(args, batch, d_inner, length, n_state, impl) -> float:
    """Max |impl - sequential float32 reference| over the first sample and 32 channels
    (the reference loop is slow), on the bench's own inputs."""
    u, delta, A, B, C, D, z, bias = scan_inputs(batch, d_inner, length, n_state, args.device)
    sl = slice(0, min(32, d_inner))
    part = (u[:1, sl].float(), delta[:1, sl].float(), A[sl], B[:1].float(), C[:1].float(), D[sl], z[:1, sl].float(), bias[sl])
    with torch.no_grad():
        ref = selective_scan_ref(*part[:6], part[6], part[7], True)
        got = selective_scan(*part[:6], part[6], part[7], True, impl=impl, chunk=args.scan_chunk)
    return float((ref - got).abs().max())


def mode_attention(args) -> None:
    heads, dim = 16, 72
    cases = [("self B16 L1024", 16, 1024, 1024, False), ("self B4 L4096", 4, 4096, 4096, False),
             ("cross B16 Lq1024 Lk120", 16, 1024, 120, True)]
    if args.tiny:
        cases = [("self B2 L64", 2, 64, 64, False), ("cross B2 Lq64 Lk12", 2, 64, 12, True)]
        heads, dim = 2, 8
    dtype = torch.bfloat16 if args.device.type == "cuda" else torch.float32
    for name, b, lq, lk, masked in cases:
        gen = torch.Generator(device=args.device).manual_seed(3)
        # [B, L, H, E] storage viewed as [B, H, L, E]: the layout the model's head split makes.
        q = torch.randn(b, lq, heads, dim, device=args.device, generator=gen).to(dtype).transpose(1, 2).requires_grad_()
        k = torch.randn(b, lk, heads, dim, device=args.device, generator=gen).to(dtype).transpose(1, 2).requires_grad_()
        v = torch.randn(b, lk, heads, dim, device=args.device, generator=gen).to(dtype).transpose(1, 2).requires_grad_()
        g = torch.randn(b, heads, lq, dim, device=args.device, generator=gen).to(dtype)
        mask = caption_mask(b, lk, args.device) if masked else None
        for backend in args.sdpa_list:
            rec = {"kind": "attention", "case": name, "backend": backend, "batch": b, "heads": heads, "lq": lq, "lk": lk,
                   "head_dim": dim, "masked": masked}
            if masked and backend == "flash":
                rec["error"] = "flash attention takes no mask"
                emit(args, rec)
                continue
            try:
                def fwd():
                    with torch.no_grad():
                        return attention_strict(q, k, v, mask, backend)

                def both():
                    return torch.autograd.grad(attention_strict(q, k, v, mask, backend), (q, k, v), g)

                f = median(time_ms(fwd, args.device, args.warmup, args.steps))
                fb = median(time_ms(both, args.device, args.warmup, args.steps))
                rec.update({"fwd_ms": f, "fwd_bwd_ms": fb,
                            "fwd_tflops": attention_flops(b, heads, lq, lk, dim, False) / f / 1e9,
                            "fwd_bwd_tflops": attention_flops(b, heads, lq, lk, dim, True) / fb / 1e9})
                if args.cuda_graphs and args.device.type == "cuda":
                    # The same calls captured into CUDA graphs and timed by replay: kernels alone,
                    # as bench/cuda/attention-compare.ts --graphs records ours.
                    f_graph, fb_graph = graphed(fwd), graphed(both)
                    gf = median(time_ms(f_graph.replay, args.device, args.warmup, args.steps))
                    gfb = median(time_ms(fb_graph.replay, args.device, args.warmup, args.steps))
                    grec = dict(rec, case=f"{name} (graph replay)", fwd_ms=gf, fwd_bwd_ms=gfb,
                                fwd_tflops=attention_flops(b, heads, lq, lk, dim, False) / gf / 1e9,
                                fwd_bwd_tflops=attention_flops(b, heads, lq, lk, dim, True) / gfb / 1e9)
                    emit(args, grec)
            except RuntimeError as e:
                rec["error"] = str(e).splitlines()[0][:300]
            emit(args, rec)


def graphed(fn):
    """fn captured into a torch.cuda.CUDAGraph after warm-up on a side stream (as PyTorch's docs
    prescribe for capture, backward included); replay() reruns its kernels."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def attention_strict(q, k, v, mask, backend):
    """SDPA on exactly one backend (no fallback), so a timing names the kernel that ran."""
    if not hasattr(F, "scaled_dot_product_attention") or backend == "default":
        return attention(q, k, v, mask)
    from torch.nn.attention import SDPBackend, sdpa_kernel
    one = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
           "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[backend]
    with sdpa_kernel([one]):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask[:, None, None, :])


def read_metadata(path: str) -> Dict[str, str]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)).get("__metadata__", {}) or {}


def mode_check(args) -> None:
    meta = read_metadata(args.check)
    preset = meta.get("preset", args.preset)
    input_size = int(meta.get("input_size", 32))
    cfg_overrides = json.loads(meta.get("config_overrides", "{}"))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = preset_config(preset, input_size=input_size, **cfg_overrides)
    model = Dimba(cfg)
    state = load_safetensors(args.check)
    missing, unexpected = model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise SystemExit(f"--check: state dict mismatch: missing {missing}, unexpected {unexpected}")
    model = model.to(args.device).eval().set_scan(args.scan_impl, args.scan_chunk, args.scan_slice, bool(args.compile_scan)).set_sdpa(args.sdpa)
    ins = {k: v.to(args.device) for k, v in load_safetensors(args.inputs).items()}
    with torch.no_grad():
        out = model(ins["x"].float(), ins["timestep"].float(), ins["caption"].float(),
                    ins["caption_mask"].bool() if "caption_mask" in ins else None,
                    ins["force_drop"].bool() if "force_drop" in ins else None)
    want = ins["out"].float()
    if out.shape != want.shape:
        raise SystemExit(f"--check: output shape {tuple(out.shape)} differs from the saved {tuple(want.shape)}")
    diff = float((out - want).abs().max())
    scale = float(want.abs().max())
    rel = diff / max(scale, 1e-30)
    rec = {"kind": "check", "preset": preset, "shape": list(out.shape), "max_abs_diff": diff, "max_abs_out": scale,
           "rel_diff": rel, "tol": args.tol, "ok": rel <= args.tol}
    emit(args, rec)
    if rel > args.tol:
        raise SystemExit(1)


# --------------------------------------------------------------------------------------------


def int_list(s: str) -> List[int]:
    return [int(v) for v in s.split(",") if v]


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description="PyTorch reference benchmarks for issue 7", formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--preset", default="Dimba-L-2")
    ap.add_argument("--res", type=int_list, default=[256], help="pixels; latents are res/8 (comma list)")
    ap.add_argument("--batch", type=int_list, default=[8], help="batch per resolution (train) or batches (sample), comma list")
    ap.add_argument("--find-batch", type=lambda s: [int_list(p) for p in s.split(";")], default=None,
                    help="train: candidate batches per resolution, e.g. '32,48,64;8,12,16' (largest that fits wins)")
    ap.add_argument("--mode", choices=("train", "sample"), default="train")
    ap.add_argument("--compile", type=int, choices=(0, 1), default=0)
    ap.add_argument("--compile-scan", type=int, choices=(0, 1), default=0,
                    help="with --compile 1: compile the selective scan too (default 0: it runs eager; its time is substituted anyway)")
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode (default, reduce-overhead, max-autotune-no-cudagraphs)")
    ap.add_argument("--sdpa", choices=SDPA_CHOICES, default="cudnn")
    ap.add_argument("--sdpa-list", type=lambda s: s.split(","), default=["cudnn", "flash", "efficient"], help="--attention: backends")
    ap.add_argument("--scan-impl", choices=IMPLS, default="chunked")
    ap.add_argument("--scan-impls", type=lambda s: s.split(","), default=["chunked"], help="--scan-only: formulations")
    ap.add_argument("--scan-chunk", type=int, default=DEFAULT_CHUNK)
    ap.add_argument("--scan-slice", type=int, default=DEFAULT_SLICE_ELEMS)
    ap.add_argument("--scan-dim", type=int, default=2304)
    ap.add_argument("--steps", type=int, default=5, help="timed repetitions (medians reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sample-steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.5)
    ap.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="--scan-only/--attention: small shapes (CPU smoke runs)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--scan-only", action="store_true")
    ap.add_argument("--attention", action="store_true")
    ap.add_argument("--cuda-graphs", action="store_true",
                    help="--attention: also time each case captured into a CUDA graph (replays: kernels without host work)")
    ap.add_argument("--check", metavar="WEIGHTS", help="weights.safetensors written by bench/cuda/export-check.ts")
    ap.add_argument("--inputs", metavar="INPUTS", help="inputs.safetensors (x, timestep, caption, caption_mask, force_drop, out)")
    ap.add_argument("--tol", type=float, default=1e-4, help="--check: largest accepted max|diff| / max|out|")
    args = ap.parse_args(argv)
    args.device = torch.device(args.device)
    for impl in args.scan_impls:
        if impl not in IMPLS:
            ap.error(f"--scan-impls: unknown formulation {impl!r}; use {', '.join(IMPLS)}")
    for b in args.sdpa_list:
        if b not in SDPA_CHOICES:
            ap.error(f"--sdpa-list: unknown backend {b!r}; use {', '.join(SDPA_CHOICES)}")
    if args.check:
        if not args.inputs:
            ap.error("--check needs --inputs")
        mode_check(args)
    elif args.scan_only:
        mode_scan(args)
    elif args.attention:
        mode_attention(args)
    elif args.mode == "sample":
        mode_sample(args)
    else:
        mode_train(args)


if __name__ == "__main__":
    main()
