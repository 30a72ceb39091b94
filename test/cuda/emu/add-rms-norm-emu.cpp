// Runs add-rms-norm.cu's kernels under the host SIMT emulation (simt.h) on operands written by
// test/cuda/add-rms-norm-emu.test.ts, with the geometry the TypeScript launcher computed
// (addRmsNormGeometry), and writes the outputs back for comparison with the CPU backend.
//
//   add-rms-norm-emu DIR   reads DIR/spec.txt and DIR/<operand>.bin (float64, little-endian).
//   spec: "type f32|bf16|f16", "dims R C", "geo k threads forwardBlocks backwardBlocks",
//         "has residual weight gres gx gweight" (0/1 each), "eps E".
//   operands: x, gnormed (T), residual, weight, gres (float32) -> res, normed, rstd, gresidual, gx, gweight
#include <algorithm>
using std::min;
#define __align__(n) alignas(n)
#include "simt.h"
#include "add-rms-norm.cu"
#include "harness-io.h"

#include <limits>

namespace {

struct Spec {
  std::string type;
  long long R = 0, C = 0, fwd = 1, bwd = 1;
  int k = 1, threads = 32, residual = 0, weight = 0, gres = 0, gx = 0, gweight = 0;
  double eps = 0;
};

Spec readSpec() {
  Spec s;
  forEachSpecLine([&](const std::string& key, std::istringstream& in) {
    if (key == "type") in >> s.type;
    else if (key == "dims") in >> s.R >> s.C;
    else if (key == "geo") in >> s.k >> s.threads >> s.fwd >> s.bwd;
    else if (key == "has") in >> s.residual >> s.weight >> s.gres >> s.gx >> s.gweight;
    else if (key == "eps") in >> s.eps;
  });
  return s;
}

// Outputs start as NaN, so an element the kernels never write shows up in the comparison.
template <class T> std::vector<T> nans(size_t n) {
  return std::vector<T>(n, Ty<T>::store((typename Ty<T>::C)std::numeric_limits<double>::quiet_NaN()));
}

template <class T, int K> void runK(const Spec& s) {
  const size_t n = (size_t)(s.R * s.C);
  const std::vector<T> x = toStorage<T>(readBin("x"));
  const std::vector<T> gn = toStorage<T>(readBin("gnormed"));
  const std::vector<float> residual = s.residual ? toStorage<float>(readBin("residual")) : std::vector<float>();
  const std::vector<float> weight = s.weight ? toStorage<float>(readBin("weight")) : std::vector<float>();
  const std::vector<float> gres = s.gres ? toStorage<float>(readBin("gres")) : std::vector<float>();
  std::vector<float> res = nans<float>(n), rstd = nans<float>((size_t)s.R), gresidual = nans<float>(n);
  std::vector<float> part = nans<float>((size_t)(s.bwd * s.C)), gweight = nans<float>((size_t)s.C);
  std::vector<T> normed = nans<T>(n), gx = nans<T>(n);
  const float* rp = s.residual ? residual.data() : nullptr;
  const float* wp = s.weight ? weight.data() : nullptr;
  emu::launch((unsigned)s.fwd, (unsigned)s.threads, [&] {
    add_rms_norm_body<T, K>(rp, x.data(), wp, res.data(), normed.data(), rstd.data(), s.R, s.C, (float)s.eps);
  });
  emu::launch((unsigned)s.bwd, (unsigned)s.threads, [&] {
    add_rms_norm_backward_body<T, K>(res.data(), wp, rstd.data(), s.gres ? gres.data() : nullptr, gn.data(), gresidual.data(),
        s.gx ? gx.data() : nullptr, s.gweight ? part.data() : nullptr, s.R, s.C);
  });
  if (s.gweight) emu::launch(2, 64, [&] { add_rms_norm_colsum_body(part.data(), gweight.data(), s.bwd, s.C); });
  writeBin("res", fromStorage(res));
  writeBin("normed", fromStorage(normed));
  writeBin("rstd", fromStorage(rstd));
  writeBin("gresidual", fromStorage(gresidual));
  if (s.gx) writeBin("gx", fromStorage(gx));
  if (s.gweight) writeBin("gweight", fromStorage(gweight));
}

template <class T> void run(const Spec& s) {
  switch (s.k) {
    case 1: runK<T, 1>(s); break;
    case 2: runK<T, 2>(s); break;
    case 4: runK<T, 4>(s); break;
    case 8: runK<T, 8>(s); break;
    default: throw std::runtime_error("k must be 1, 2, 4 or 8");
  }
}

}  // namespace

int main(int argc, char** argv) {
  return harnessMain(argc, argv, "add-rms-norm-emu", [&] {
    const Spec s = readSpec();
    if (s.type == "f32") run<float>(s);
    else if (s.type == "bf16") run<bf16>(s);
    else if (s.type == "f16") run<f16>(s);
    else throw std::runtime_error("unknown type " + s.type);
  });
}
