// Runs scan.cu's forward and backward kernels under the host SIMT emulation (simt.h) on operands
// written by test/cuda/scan-emulated.test.ts, and writes every output back, so the kernels'
// indexing, staging, shuffles and reductions are checked against the CPU reference without a GPU.
//
//   scan-emu DIR         reads DIR/spec.txt and DIR/<operand>.bin (float64, little-endian),
//                        writes DIR/<output>.bin and prints the geometry it used.
// The build (host-compiler.ts buildSimtEmulation) compiles this file beside copies of scan.cu and common.cuh whose
// inline PTX is replaced by host code.
#include "simt.h"
#include "scan.cu"
#include "harness-io.h"

#include <map>

namespace {

struct View {
  long long offset = 0;
  long long stride[4] = {0, 0, 0, 0};
};

struct Spec {
  std::string type;
  long long B = 0, D = 0, L = 0, N = 0, G = 0;
  int softplus = 0, hasZ = 0, hasD = 0, hasBias = 0, wantLast = 0;
  int aLog = 0;  // A.bin holds A_log (SCAN_A_LOG)
  int statesPerLane = 4;  // 2: the split layout (8 lanes of 2 states for up to 16 states)
  std::map<std::string, View> views;
};

Spec readSpec() {
  Spec s;
  forEachSpecLine([&](const std::string& key, std::istringstream& in) {
    if (key == "type") in >> s.type;
    else if (key == "dims") in >> s.B >> s.D >> s.L >> s.N >> s.G;
    else if (key == "flags") in >> s.softplus >> s.hasZ >> s.hasD >> s.hasBias >> s.wantLast >> s.aLog;
    else if (key == "statesPerLane") in >> s.statesPerLane;
    else if (key == "view") {
      std::string name;
      View v;
      in >> name >> v.offset >> v.stride[0] >> v.stride[1] >> v.stride[2] >> v.stride[3];
      s.views[name] = v;
    }
  });
  return s;
}

template <class S> std::vector<S> toCompute(const std::vector<double>& v) { return std::vector<S>(v.begin(), v.end()); }
template <class S> std::vector<double> fromCompute(const std::vector<S>& v) { return std::vector<double>(v.begin(), v.end()); }

ScanRowStrides rowStrides(const View& v) { return {v.stride[0], v.stride[1], v.stride[2]}; }
ScanBcStrides bcStrides(const View& v) { return {v.stride[0], v.stride[1], v.stride[2], v.stride[3]}; }

template <class T, int P, int SPT> void run(const Spec& s) {
  typedef typename Ty<T>::C S;
  typedef ScanCfg<S, P, SPT> Cfg;
  const long long rows = s.B * s.D;
  const long long cpg = s.D / s.G;
  const long long blocks = s.B * s.G * ((cpg + Cfg::RB - 1) / Cfg::RB);
  const long long chunks = (s.L + Cfg::K - 1) / Cfg::K;
  std::printf("geometry lanes %d threads %d chunk %d rowsPerBlock %d blocks %lld chunks %lld\n", Cfg::P, Cfg::THREADS,
      Cfg::K, Cfg::RB, blocks, chunks);

  auto u = toStorage<T>(readBin("u"));
  auto delta = toStorage<T>(readBin("delta"));
  auto Bm = toStorage<T>(readBin("B"));
  auto Cm = toStorage<T>(readBin("C"));
  auto gy = toStorage<T>(readBin("gy"));
  std::vector<T> z = s.hasZ ? toStorage<T>(readBin("z")) : std::vector<T>();
  auto A = toCompute<S>(readBin("A"));
  std::vector<S> Dv = s.hasD ? toCompute<S>(readBin("D")) : std::vector<S>();
  std::vector<S> bias = s.hasBias ? toCompute<S>(readBin("bias")) : std::vector<S>();
  const View vu = s.views.at("u"), vdl = s.views.at("delta"), vB = s.views.at("B"), vC = s.views.at("C"),
      vg = s.views.at("gy");
  const View vz = s.hasZ ? s.views.at("z") : View();
  const T* pz = s.hasZ ? z.data() + vz.offset : nullptr;
  const S* pD = s.hasD ? Dv.data() : nullptr;
  const S* pbias = s.hasBias ? bias.data() : nullptr;
  const int flags = (s.softplus ? SCAN_SOFTPLUS : 0) | (s.aLog ? SCAN_A_LOG : 0);

  std::vector<T> out(rows * s.L);
  std::vector<S> last(s.wantLast ? rows * s.N : 0);
  emu::launch((unsigned)blocks, Cfg::THREADS, [&] {
    scan_forward_body<T, P, SPT>(u.data() + vu.offset, delta.data() + vdl.offset, pz, Bm.data() + vB.offset,
        Cm.data() + vC.offset, A.data(), pD, pbias, out.data(), s.wantLast ? last.data() : nullptr, s.D, s.L, s.N, s.G,
        rowStrides(vu), rowStrides(vdl), rowStrides(vz), bcStrides(vB), bcStrides(vC), flags, blockIdx.x);
  });
  writeBin("out", fromStorage(out));
  if (s.wantLast) writeBin("last", fromCompute(last));

  std::vector<T> du(rows * s.L), ddelta(rows * s.L), dz(s.hasZ ? rows * s.L : 0);
  std::vector<S> dA(s.D * s.N, (S)0), dB(s.B * s.G * s.N * s.L, (S)0), dC(s.B * s.G * s.N * s.L, (S)0);
  std::vector<S> dD(s.D, (S)0), dbias(s.D, (S)0);
  std::vector<S> bounds(chunks > 1 ? (chunks - 1) * rows * Cfg::NPAD : 0);
  emu::launch((unsigned)blocks, Cfg::THREADS, [&] {
    scan_backward_body<T, P, SPT>(u.data() + vu.offset, delta.data() + vdl.offset, pz, gy.data() + vg.offset,
        Bm.data() + vB.offset, Cm.data() + vC.offset, A.data(), pD, pbias, du.data(), ddelta.data(),
        s.hasZ ? dz.data() : nullptr, dA.data(), dB.data(), dC.data(), s.hasD ? dD.data() : nullptr,
        s.hasBias ? dbias.data() : nullptr, bounds.empty() ? nullptr : bounds.data(), s.B, s.D, s.L, s.N, s.G,
        rowStrides(vu), rowStrides(vdl), rowStrides(vz), rowStrides(vg), bcStrides(vB), bcStrides(vC), flags);
  });
  writeBin("du", fromStorage(du));
  writeBin("ddelta", fromStorage(ddelta));
  if (s.hasZ) writeBin("dz", fromStorage(dz));
  writeBin("dA", fromCompute(dA));
  writeBin("dB", fromCompute(dB));
  writeBin("dC", fromCompute(dC));
  if (s.hasD) writeBin("dD", fromCompute(dD));
  if (s.hasBias) writeBin("dbias", fromCompute(dbias));
}

template <class T> void runType(const Spec& s) {
  if (s.statesPerLane == 2) {
    if constexpr (sizeof(typename Ty<T>::C) == 4) {
      if (s.N <= 16) return run<T, 8, 2>(s);
    }
    throw std::runtime_error("the split layout takes float compute and at most 16 states");
  }
  if (s.N <= 16) run<T, 4, 4>(s);
  else if (s.N <= 32) run<T, 8, 4>(s);
  else if (s.N <= 64) run<T, 16, 4>(s);
  else run<T, 32, 4>(s);
}

}  // namespace

int main(int argc, char** argv) {
  return harnessMain(argc, argv, "scan-emu", [&] {
    const Spec s = readSpec();
    if (s.type == "f32") runType<float>(s);
    else if (s.type == "f64") runType<double>(s);
    else if (s.type == "bf16") runType<bf16>(s);
    else if (s.type == "f16") runType<f16>(s);
    else throw std::runtime_error("unknown type " + s.type);
  });
}
