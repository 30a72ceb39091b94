// Runs cudnn-attention.cu's kernels (the fix-ups around cuDNN's masked attention) under the host
// SIMT emulation (simt.h) on operands written by test/cuda/cudnn-attention-emu.test.ts.
//
//   cudnn-attention-emu DIR   reads DIR/spec.txt, DIR/mask.bin, DIR/o.bin (O's whole storage),
//                             DIR/lse.bin, all float64; writes DIR/o.bin, DIR/lse.bin (after
//                             cudnn_attn_empty_rows_*) and DIR/stats.bin (cudnn_attn_bwd_stats of
//                             the lse read in).
#include "simt.h"

#include <atomic>

// __syncthreads_or, which simt.h does not have: a block-wide OR between barriers (blocks run one
// after another, so one flag serves every block).
namespace emu_or {
inline std::atomic<int> flag{0};
}
inline int __syncthreads_or(int p) {
  __syncthreads();
  if (p) emu_or::flag.store(1);
  __syncthreads();
  const int r = emu_or::flag.load();
  __syncthreads();
  if (threadIdx.x == 0) emu_or::flag.store(0);
  __syncthreads();
  return r;
}

#include "cudnn-attention.cu"
#include "harness-io.h"

namespace {

struct Spec {
  std::string type;
  long long maskBatch = 0, maskKey = 1, ob = 0, oh = 0, ol = 0;
  int B = 0, H = 0, Lq = 0, Lk = 0, E = 0, rowsPerBlock = 0;
};

Spec readSpec() {
  std::ifstream f = openSpec();
  Spec s;
  f >> s.type >> s.B >> s.H >> s.Lq >> s.Lk >> s.E >> s.maskBatch >> s.maskKey >> s.ob >> s.oh >> s.ol >> s.rowsPerBlock;
  if (!f) throw std::runtime_error("malformed spec.txt");
  return s;
}

template <class T>
using RowsFn = void (*)(const T*, long long, long long, int, T*, long long, long long, long long, float*, int, int, int, int, int);

template <class T> void run(const Spec& s, RowsFn<T> rows) {
  std::vector<T> mask = toStorage<T>(readBin("mask"));
  std::vector<T> o = toStorage<T>(readBin("o"));
  const std::vector<double> lse64 = readBin("lse");
  std::vector<float> lse(lse64.begin(), lse64.end());
  std::vector<float> stats(lse.size(), std::nanf(""));
  const long long n = (long long)lse.size();
  emu::launch((unsigned)std::max<long long>(1, std::min<long long>((n + 255) / 256, 3)), 256, [&] {
    cudnn_attn_bwd_stats(lse.data(), stats.data(), n);
  });
  const int blocksPerBatch = (s.H * s.Lq + s.rowsPerBlock - 1) / s.rowsPerBlock;
  emu::launch((unsigned)(s.B * blocksPerBatch), 256, [&] {
    rows(mask.data(), s.maskBatch, s.maskKey, s.Lk, o.data(), s.ob, s.oh, s.ol, lse.data(), s.H, s.Lq, s.E, s.rowsPerBlock, blocksPerBatch);
  });
  writeBin("o", fromStorage<T>(o));
  writeBin("lse", std::vector<double>(lse.begin(), lse.end()));
  writeBin("stats", std::vector<double>(stats.begin(), stats.end()));
}

}  // namespace

int main(int argc, char** argv) {
  return harnessMain(argc, argv, "cudnn-attention-emu", [&] {
    const Spec s = readSpec();
    if (s.type == "bf16") return run<bf16>(s, cudnn_attn_empty_rows_bf16);
    if (s.type == "f16") return run<f16>(s, cudnn_attn_empty_rows_f16);
    throw std::runtime_error("unknown type " + s.type);
  });
}
