// Runs attention.cu's kernels on the CPU emulator (emu.h) with the launch geometry the
// TypeScript plan chose (passed on the command line), and compares O, the log-sum-exp and dQ, dK,
// dV with a float64 reference computed here from the same rounded inputs. Prints one JSON line:
// per output [max |a - e| / bound, ||a - e|| / ||e||] (see Err), the count of non-finite or
// unexpected values, and how many fully masked rows there were and how many broke their rule.
//
// usage: attention-harness dtype B H Lq Lk E mask layout seed early
//          fwdGrid fwdThreads fwdSmem bwdGrid bwdThreads bwdSmem splits dqDirect prepGrid prepThreads
//   dtype bf16 | f16; mask none | keys | keysadd | full | fulladd; layout bhle | blhe; early 0 | 1
#include "attention.cu"

#include <string>

namespace {

struct Rng {
  unsigned long long s;
  double uniform() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((s >> 11) & ((1ULL << 53) - 1)) / 9007199254740992.0;
  }
  double normal() {
    const double u = uniform() + 1e-12, v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

struct Args {
  std::string dtype, mask, layout;
  int B, H, Lq, Lk, E;
  unsigned long long seed;
  bool early;
  unsigned fwdGrid, fwdThreads, fwdSmem, bwdGrid, bwdThreads, bwdSmem, splits, dqDirect, prepGrid, prepThreads;
};

// A [B, H, L, E] tensor of T in layout bhle (contiguous) or blhe (heads interleaved per row).
template <class T> struct Head {
  std::vector<T> data;
  HeadStrides st;
  int B, H, L, E;
  Head(int B_, int H_, int L_, int E_, const std::string& layout) : data((size_t)B_ * H_ * L_ * E_ + 8), B(B_), H(H_), L(L_), E(E_) {
    if (layout == "bhle") st = HeadStrides{(long long)H * L * E, (long long)L * E, (long long)E};
    else st = HeadStrides{(long long)L * H * E, (long long)E, (long long)H * E};
  }
  size_t at(int b, int h, int l, int e) const { return (size_t)(b * st.b + h * st.h + l * st.l + e); }
  float get(int b, int h, int l, int e) const { return Ty<T>::load(data[at(b, h, l, e)]); }
  void set(int b, int h, int l, int e, float v) { data[at(b, h, l, e)] = Ty<T>::store(v); }
};

// Errors as multiples of an a-priori bound: for a sum of products the bound is the sum of the
// products' magnitudes (the textbook error bound of a dot product scales with it), so a result
// that cancels to nearly nothing is not held to a tolerance relative to itself.
struct Err {
  double maxRatio = 0;  // max |a - e| / bound
  double norm = 0;      // ||a - e|| / ||e|| (absolute where e is all zero)
  long bad = 0;         // non-finite where the reference is finite, or nonzero where the bound is 0
  void add(const std::vector<double>& a, const std::vector<double>& e, const std::vector<double>& bound) {
    double num = 0, den = 0;
    for (size_t i = 0; i < e.size(); ++i) {
      if (!std::isfinite(a[i])) { ++bad; continue; }
      const double d = std::fabs(a[i] - e[i]);
      num += d * d;
      den += e[i] * e[i];
      if (bound[i] > 0) maxRatio = std::max(maxRatio, d / bound[i]);
      else if (d != 0) ++bad;
    }
    norm = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  }
};

template <class T, int D> int run(const Args& a) {
  constexpr int FNW = fwd_warps(D), FMT = fwd_mtiles(D), FBC = fwd_keys(D);
  constexpr int BNW = bwd_warps(D), BBR = bwd_queries(D);
  constexpr int FBR = FNW * 16 * FMT, BBC = BNW * 16;
  const size_t fwdNeed = (size_t)(FBR + 2 * FBC) * (D + 8) * 2 + FBC * 4;
  const size_t bwdNeed = (size_t)(2 * BBC + 4 * BBR) * (D + 8) * 2 + (size_t)BBC * (BBR + 8) * 2 + 4 * BBR * 4;
  const int B = a.B, H = a.H, Lq = a.Lq, Lk = a.Lk, E = a.E;
  const int BH = B * H;
  if (a.fwdThreads != (unsigned)FNW * 32 || a.bwdThreads != (unsigned)BNW * 32) emu::fail("plan threads differ from the kernel's warps");
  if (a.fwdSmem != fwdNeed || a.bwdSmem != bwdNeed) {
    std::fprintf(stderr, "emu: plan shared bytes %u / %u, kernel needs %zu / %zu\n", a.fwdSmem, a.bwdSmem, fwdNeed, bwdNeed);
    return 3;
  }
  const unsigned nqt = (Lq + FBR - 1) / FBR;
  if (a.fwdGrid != BH * nqt) emu::fail("forward grid differs from B * H * query tiles");
  const unsigned nkt = (Lk + BBC - 1) / BBC;
  if (a.bwdGrid != BH * nkt * a.splits) emu::fail("backward grid differs from B * H * key tiles * splits");
  if (a.dqDirect && nkt > 1) emu::fail("dQ stored directly with several key tiles contributing to each row");
  emu::S().early_copies = a.early;
  emu::S().rng.seed(a.seed);
  Rng rng{a.seed * 7919 + 17};

  Head<T> q(B, H, Lq, E, a.layout), k(B, H, Lk, E, a.layout), v(B, H, Lk, E, a.layout), o(B, H, Lq, E, a.layout),
      dout(B, H, Lq, E, a.layout), dq(B, H, Lq, E, a.layout), dk(B, H, Lk, E, a.layout), dv(B, H, Lk, E, a.layout);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < Lq; ++i)
        for (int e = 0; e < E; ++e) { q.set(b, h, i, e, (float)(rng.normal() * 1.5)); dout.set(b, h, i, e, (float)rng.normal()); }
      for (int j = 0; j < Lk; ++j)
        for (int e = 0; e < E; ++e) { k.set(b, h, j, e, (float)(rng.normal() * 1.5)); v.set(b, h, j, e, (float)rng.normal()); }
    }
  // Poison outputs so unwritten elements show up as NaN.
  for (Head<T>* t : {&o, &dq, &dk, &dv}) for (T& x : t->data) x = Ty<T>::store(std::numeric_limits<float>::quiet_NaN());

  // The additive mask, as T, and its [B, H, Lq, Lk] strides.
  const float NEG = -std::numeric_limits<float>::infinity();
  std::vector<T> mask;
  MaskStrides ms{0, 0, 0, 0};
  int kind = ATTN_MASK_NONE;
  if (a.mask == "keys") {  // key padding [B, Lk]: batch 0 fully masked, others a random prefix
    mask.resize((size_t)B * Lk);
    for (int b = 0; b < B; ++b) {
      const int valid = b == 0 ? 0 : 1 + (int)(rng.uniform() * Lk);
      for (int j = 0; j < Lk; ++j) mask[(size_t)b * Lk + j] = Ty<T>::store(j < valid ? 0.f : NEG);
    }
    ms = MaskStrides{Lk, 0, 0, 1};
    kind = ATTN_MASK_KEYS;
  } else if (a.mask == "keysadd") {  // additive per (batch, head, key), some -inf
    mask.resize((size_t)BH * Lk);
    for (auto& m : mask) m = Ty<T>::store(rng.uniform() < 0.2 ? NEG : (float)(-3.0 * rng.uniform()));
    ms = MaskStrides{(long long)H * Lk, Lk, 0, 1};
    kind = ATTN_MASK_KEYS;
  } else if (a.mask == "full") {  // boolean [Lq, Lk] as 0 / -inf, one query row fully masked
    mask.resize((size_t)Lq * Lk);
    for (int i = 0; i < Lq; ++i)
      for (int j = 0; j < Lk; ++j) mask[(size_t)i * Lk + j] = Ty<T>::store(i == Lq / 2 || rng.uniform() < 0.3 ? NEG : 0.f);
    ms = MaskStrides{0, 0, Lk, 1};
    kind = ATTN_MASK_FULL;
  } else if (a.mask == "fulladd") {  // additive [B, H, Lq, Lk]
    mask.resize((size_t)BH * Lq * Lk);
    for (auto& m : mask) m = Ty<T>::store(rng.uniform() < 0.1 ? NEG : (float)(rng.normal()));
    ms = MaskStrides{(long long)H * Lq * Lk, (long long)Lq * Lk, Lk, 1};
    kind = ATTN_MASK_FULL;
  } else if (a.mask != "none") {
    emu::fail("unknown mask mode");
  }
  mask.resize(mask.size() + 1);  // never empty, so the pointer is valid

  const float scale = 1.0f / std::sqrt((float)E);
  const float scale_log2 = scale * ATTN_LOG2E;
  std::vector<float> lse((size_t)BH * Lq + 1, std::numeric_limits<float>::quiet_NaN());
  std::vector<float> stats(2 * (size_t)BH * Lq + 1), dq_acc((size_t)BH * Lq * E + 1);
  std::vector<float> dk_acc((size_t)BH * Lk * E + 1, 0.f), dv_acc((size_t)BH * Lk * E + 1, 0.f);

  emu::clear_regions();
  for (Head<T>* t : {&q, &k, &v, &o, &dout, &dq, &dk, &dv}) emu::add_region(t->data.data(), (t->data.size() - 8) * sizeof(T), "head tensor");
  emu::add_region(mask.data(), (mask.size() - 1) * sizeof(T), "mask");
  emu::add_region(lse.data(), (lse.size() - 1) * 4, "lse");
  emu::add_region(stats.data(), (stats.size() - 1) * 4, "stats");
  if (!a.dqDirect) emu::add_region(dq_acc.data(), (dq_acc.size() - 1) * 4, "dq accumulator");
  float* dq_acc_ptr = a.dqDirect ? nullptr : dq_acc.data();
  if (a.splits > 1) {
    emu::add_region(dk_acc.data(), (dk_acc.size() - 1) * 4, "dk accumulator");
    emu::add_region(dv_acc.data(), (dv_acc.size() - 1) * 4, "dv accumulator");
  }

  for (unsigned blk = 0; blk < a.fwdGrid; ++blk) {
    emu::run_block(blk, a.fwdGrid, a.fwdThreads, a.fwdSmem, [&] {
      attn_fwd_body<T, D, FNW, FMT, FBC>(q.data.data(), k.data.data(), v.data.data(), o.data.data(), lse.data(), mask.data(),
          q.st, k.st, v.st, o.st, ms, H, Lq, Lk, E, scale_log2, kind);
    });
  }
  const long long rows = (long long)BH * Lq;
  for (unsigned blk = 0; blk < a.prepGrid; ++blk) {
    emu::run_block(blk, a.prepGrid, a.prepThreads, 0, [&] {
      attn_bwd_prep_body<T>(o.data.data(), dout.data.data(), lse.data(), stats.data(), dq_acc_ptr, o.st, dout.st, H, Lq, E, rows);
    });
  }
  for (unsigned blk = 0; blk < a.bwdGrid; ++blk) {
    emu::run_block(blk, a.bwdGrid, a.bwdThreads, a.bwdSmem, [&] {
      attn_bwd_body<T, D, BNW, BBR>(q.data.data(), k.data.data(), v.data.data(), dout.data.data(), stats.data(), stats.data() + rows,
          dq_acc_ptr, dq.data.data(), dk.data.data(), dv.data.data(), dk_acc.data(), dv_acc.data(), mask.data(), q.st, k.st, v.st,
          dout.st, dq.st, dk.st, dv.st, ms, H, Lq, Lk, E, scale_log2, scale, kind, (int)a.splits, (int)a.dqDirect);
    });
  }
  auto convert = [&](const std::vector<float>& acc, Head<T>& dst, int L, float s) {
    const long long pairs = (long long)BH * L * E / 2;
    const unsigned grid = (unsigned)std::max(1LL, std::min(3LL, (pairs + 63) / 64));
    for (unsigned blk = 0; blk < grid; ++blk) {
      emu::run_block(blk, grid, 64, 0, [&] { attn_convert_body<T>(acc.data(), dst.data.data(), dst.st, H, L, E, s, pairs); });
    }
  };
  if (!a.dqDirect) convert(dq_acc, dq, Lq, scale);
  if (a.splits > 1) {
    convert(dk_acc, dk, Lk, 1.f);
    convert(dv_acc, dv, Lk, 1.f);
  }

  // float64 reference from the same rounded values, with the bounds Err measures against.
  std::vector<double> eo, ao, bo, else_, alse, blse, edq, adq, bdq, edk, adk, bdk, edv, adv, bdv;
  long maskedRows = 0, maskedRowErrors = 0;
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      // P, dS = P (dP - Delta) and |dS|'s bound P (|dP| + sum |O dO|).
      std::vector<double> P((size_t)Lq * Lk), dS((size_t)Lq * Lk), dSabs((size_t)Lq * Lk), L(Lq);
      std::vector<bool> dead(Lq);
      for (int i = 0; i < Lq; ++i) {
        double mx = -INFINITY;
        std::vector<double> s(Lk);
        for (int j = 0; j < Lk; ++j) {
          double acc = 0;
          for (int e = 0; e < E; ++e) acc += (double)q.get(b, h, i, e) * k.get(b, h, j, e);
          double m = 0;
          if (kind != ATTN_MASK_NONE) m = Ty<T>::load(mask[(size_t)(b * ms.b + h * ms.h + i * ms.q + j * ms.k)]);
          s[j] = acc * scale + m;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < Lk; ++j) sum += mx == -INFINITY ? 0 : std::exp(s[j] - mx);
        dead[i] = !(sum > 0);
        for (int j = 0; j < Lk; ++j) P[(size_t)i * Lk + j] = dead[i] ? 0 : std::exp(s[j] - mx) / sum;
        L[i] = dead[i] ? -INFINITY : mx + std::log(sum);
      }
      for (int i = 0; i < Lq; ++i) {
        double delta = 0, deltaAbs = 0;
        std::vector<double> oi(E, 0.0), oiAbs(E, 0.0);
        for (int e = 0; e < E; ++e) {
          for (int j = 0; j < Lk; ++j) {
            oi[e] += P[(size_t)i * Lk + j] * v.get(b, h, j, e);
            oiAbs[e] += P[(size_t)i * Lk + j] * std::fabs(v.get(b, h, j, e));
          }
          delta += oi[e] * dout.get(b, h, i, e);
          deltaAbs += std::fabs(oi[e] * dout.get(b, h, i, e));
        }
        for (int j = 0; j < Lk; ++j) {
          double dp = 0;
          for (int e = 0; e < E; ++e) dp += (double)dout.get(b, h, i, e) * v.get(b, h, j, e);
          dS[(size_t)i * Lk + j] = P[(size_t)i * Lk + j] * (dp - delta);
          dSabs[(size_t)i * Lk + j] = P[(size_t)i * Lk + j] * (std::fabs(dp) + deltaAbs);
        }
        if (dead[i]) {
          ++maskedRows;
          if (!(lse[(size_t)(b * H + h) * Lq + i] == -INFINITY)) ++maskedRowErrors;
          for (int e = 0; e < E; ++e) if (o.get(b, h, i, e) != 0.f || dq.get(b, h, i, e) != 0.f) ++maskedRowErrors;
        } else {
          else_.push_back(L[i]);
          alse.push_back(lse[(size_t)(b * H + h) * Lq + i]);
          blse.push_back(1 + std::fabs(L[i]));
        }
        for (int e = 0; e < E; ++e) {
          eo.push_back(oi[e]);
          ao.push_back(o.get(b, h, i, e));
          bo.push_back(oiAbs[e]);
          double g = 0, gAbs = 0;
          for (int j = 0; j < Lk; ++j) {
            g += dS[(size_t)i * Lk + j] * k.get(b, h, j, e);
            gAbs += dSabs[(size_t)i * Lk + j] * std::fabs(k.get(b, h, j, e));
          }
          edq.push_back(g * scale);
          adq.push_back(dq.get(b, h, i, e));
          bdq.push_back(gAbs * scale);
        }
      }
      for (int j = 0; j < Lk; ++j)
        for (int e = 0; e < E; ++e) {
          double gk = 0, gkAbs = 0, gv = 0, gvAbs = 0;
          for (int i = 0; i < Lq; ++i) {
            gk += dS[(size_t)i * Lk + j] * q.get(b, h, i, e);
            gkAbs += dSabs[(size_t)i * Lk + j] * std::fabs(q.get(b, h, i, e));
            gv += P[(size_t)i * Lk + j] * dout.get(b, h, i, e);
            gvAbs += P[(size_t)i * Lk + j] * std::fabs(dout.get(b, h, i, e));
          }
          edk.push_back(gk * scale);
          adk.push_back(dk.get(b, h, j, e));
          bdk.push_back(gkAbs * scale);
          edv.push_back(gv);
          adv.push_back(dv.get(b, h, j, e));
          bdv.push_back(gvAbs);
        }
    }
  }
  Err out, l, gq, gk, gv;
  out.add(ao, eo, bo);
  l.add(alse, else_, blse);
  gq.add(adq, edq, bdq);
  gk.add(adk, edk, bdk);
  gv.add(adv, edv, bdv);
  const Err* all[] = {&out, &l, &gq, &gk, &gv};
  const char* names[] = {"out", "lse", "dq", "dk", "dv"};
  std::printf("{");
  for (int i = 0; i < 5; ++i) std::printf("\"%s\":[%.6g,%.6g],", names[i], all[i]->maxRatio, all[i]->norm);
  std::printf("\"nonfinite\":%ld,\"maskedRows\":%ld,\"maskedRowErrors\":%ld}\n", out.bad + l.bad + gq.bad + gk.bad + gv.bad, maskedRows,
      maskedRowErrors);
  return 0;
}

template <class T> int dispatch(const Args& a) {
  switch ((a.E + 15) / 16 * 16) {
    case 16: return run<T, 16>(a);
    case 32: return run<T, 32>(a);
    case 48: return run<T, 48>(a);
    case 64: return run<T, 64>(a);
    case 80: return run<T, 80>(a);
    case 96: return run<T, 96>(a);
    case 112: return run<T, 112>(a);
    case 128: return run<T, 128>(a);
    default: emu::fail("head dim out of range");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 21) {
    std::fprintf(stderr, "usage: %s dtype B H Lq Lk E mask layout seed early fwdGrid fwdThreads fwdSmem bwdGrid bwdThreads bwdSmem splits dqDirect prepGrid prepThreads\n", argv[0]);
    return 2;
  }
  Args a;
  a.dtype = argv[1];
  a.B = std::atoi(argv[2]); a.H = std::atoi(argv[3]); a.Lq = std::atoi(argv[4]); a.Lk = std::atoi(argv[5]); a.E = std::atoi(argv[6]);
  a.mask = argv[7]; a.layout = argv[8]; a.seed = std::strtoull(argv[9], nullptr, 10); a.early = std::atoi(argv[10]) != 0;
  unsigned* plan[] = {&a.fwdGrid, &a.fwdThreads, &a.fwdSmem, &a.bwdGrid, &a.bwdThreads, &a.bwdSmem, &a.splits, &a.dqDirect, &a.prepGrid, &a.prepThreads};
  for (int i = 0; i < 10; ++i) *plan[i] = (unsigned)std::strtoul(argv[11 + i], nullptr, 10);
  if (a.layout != "bhle" && a.layout != "blhe") emu::fail("layout must be bhle or blhe");
  if (a.E % 8 != 0 || a.E < 8 || a.E > 128) emu::fail("E must be a multiple of 8 in [8, 128]");
  return a.dtype == "bf16" ? dispatch<bf16>(a) : dispatch<f16>(a);
}
