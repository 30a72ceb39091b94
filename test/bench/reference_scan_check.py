"""Checks bench/reference/selective_scan.py on the CPU (run by test/bench/smoke.test.ts when a
python3 with torch is available): the chunked formulation and its hand-written backward against
autograd through the sequential definition, in float64 (exact to rounding) and in float32 over a
long sequence with mamba_ssm-like step sizes; torch.autograd.gradcheck on the Function; the
chunk-carry recurrence against the loop. Exits non-zero with a message on the first failure."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "reference"))

from selective_scan import linrec_chunked, linrec_doubling, linrec_loop, selective_scan, selective_scan_ref  # noqa: E402


def inputs(b, d, length, n, groups, dtype, delta_scale=0.5, z=True, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype).requires_grad_()

    bc = (b, n, length) if groups == 0 else (b, groups, n, length)
    return dict(
        u=r(b, d, length), delta=r(b, d, length, scale=delta_scale),
        A=(-torch.rand(d, n, generator=g, dtype=torch.float64) * 8 - 0.5).to(dtype).requires_grad_(),
        B=r(*bc), C=r(*bc), D=r(d), z=r(b, d, length) if z else None, delta_bias=r(d, scale=0.5),
    )


def check(name, got, want, tol):
    err = float((got.double() - want.double()).abs().max() / max(float(want.double().abs().max()), 1e-30))
    if not err <= tol:
        raise SystemExit(f"FAIL {name}: relative error {err:.3e} > {tol:.1e}")
    print(f"ok   {name}: {err:.1e}")


def compare(label, x, chunk, slice_elems, tol):
    names = [k for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias") if x[k] is not None]
    args = dict(D=x["D"], z=x["z"], delta_bias=x["delta_bias"], delta_softplus=True)
    ref = selective_scan_ref(x["u"], x["delta"], x["A"], x["B"], x["C"], **args)
    got = selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], chunk=chunk, slice_elems=slice_elems, **args)
    check(f"{label} out", got, ref, tol)
    g = torch.randn_like(ref)
    want = torch.autograd.grad(ref, [x[k] for k in names], g)
    have = torch.autograd.grad(got, [x[k] for k in names], g)
    for k, a, c in zip(names, have, want):
        check(f"{label} d{k}", a, c, tol)


def main():
    torch.manual_seed(0)
    # float64, to 1e-9: odd lengths (padding), chunk sizes 1 to 8 and longer than L, grouped B/C,
    # without z, batch slicing. (1e-9, not rounding level: steps whose decay is below the
    # e^-20 floor differ from the definition by up to 2e-9 of the state.)
    for groups in (0, 2):
        for chunk, slice_elems in ((8, 1 << 27), (5, 1 << 27), (3, 1 << 27), (1, 1 << 27), (8, 300)):
            compare(f"f64 G{groups} T{chunk} slice{slice_elems}", inputs(3, 8, 45, 4, groups, torch.float64), chunk, slice_elems, 1e-9)
    compare("f64 no z, L shorter than a chunk", inputs(2, 6, 5, 4, 0, torch.float64, z=False), 8, 1 << 27, 1e-9)
    # float32 over a long sequence: moderate step sizes, then large ones (delta' up to ~10, per-step
    # decays far below the e^-20 floor), where an unfloored closed form would overflow.
    compare("f32 L1024", inputs(2, 16, 1024, 16, 0, torch.float32, delta_scale=0.3), 8, 1 << 27, 2e-4)
    compare("f32 L512 large steps", inputs(2, 16, 512, 16, 0, torch.float32, delta_scale=4.0), 8, 1 << 27, 2e-4)
    try:
        selective_scan(*(torch.zeros(1, 1, 4),) * 2, -torch.ones(1, 1), torch.zeros(1, 1, 4), torch.zeros(1, 1, 4), chunk=9)
        raise SystemExit("FAIL chunk 9 was accepted")
    except ValueError as e:
        assert "chunk must be in [1, 8]" in str(e), e
    print("ok   chunk > 8 refused")

    x = inputs(2, 4, 23, 3, 0, torch.float64)
    fn = lambda u, delta, A, B, C, D, z, bias: selective_scan(u, delta, A, B, C, D, z, bias, True, chunk=4)  # noqa: E731
    if not torch.autograd.gradcheck(fn, tuple(x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias"))):
        raise SystemExit("FAIL gradcheck")
    print("ok   gradcheck")

    log_a = -torch.rand(3, 37, 5, dtype=torch.float64) * 3
    xs = torch.randn(3, 37, 5, dtype=torch.float64)
    check("doubling scan", linrec_doubling(log_a, xs), linrec_loop(log_a, xs), 1e-12)
    check("chunked scan T7", linrec_chunked(log_a, xs, 7), linrec_loop(log_a, xs), 1e-12)
    print("all scan checks passed")


if __name__ == "__main__":
    main()
