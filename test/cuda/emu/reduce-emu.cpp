// Runs reduce.cu's column-reduction kernels under the host SIMT emulation (simt.h) with the
// geometry the TypeScript launcher planned (kernels/reduce.ts columnPlan), on a strided x written
// by test/cuda/reduce-emu.test.ts, so the strip/chunk indexing, vector loads, the shared-memory
// fold and the second pass over partials are checked against the CPU backend without a GPU.
//
//   reduce-emu DIR   reads DIR/spec.txt and DIR/x.bin (x's whole storage as float64),
//                    writes DIR/out.bin (outer * inner results as float64).
#include <algorithm>
using std::min;
#include "simt.h"
#include "reduce.cu"
#include "harness-io.h"

#include <limits>
#include <type_traits>

namespace {

struct Spec {
  std::string type;
  int op = 0, outType = 0;
  long long outer = 0, reduced = 0, inner = 0, so = 0, sr = 0, offset = 0;
  int vec = 1, tx = 32, strips = 1, chunks = 1, grid = 1;
  long long chunkRows = 1;
};

Spec readSpec() {
  std::ifstream f = openSpec();
  Spec s;
  f >> s.type >> s.op >> s.outType >> s.outer >> s.reduced >> s.inner >> s.so >> s.sr >> s.offset >> s.vec >> s.tx >> s.strips
    >> s.chunkRows >> s.chunks >> s.grid;
  if (!f) throw std::runtime_error("malformed spec.txt");
  return s;
}

const int OUT_BYTES[7] = {4, 8, 2, 2, 4, 8, 1};

template <class T>
using ColsFn = void (*)(int, const T*, void*, int, typename Ty<T>::C*, int*, long long, long long, long long, long long,
    long long, int, int, long long);

template <class T> void run(const Spec& s, ColsFn<T> scalar, ColsFn<T> vector) {
  typedef typename Ty<T>::C C;
  const std::vector<double> xv = readBin("x");
  // 16-byte aligned like a device allocation, so offset alone decides what the vector kernel may load.
  struct alignas(16) Chunk { unsigned char b[16]; };
  std::vector<Chunk> storage((xv.size() * sizeof(T) + 15) / 16);
  T* xb = reinterpret_cast<T*>(storage.data());
  for (size_t i = 0; i < xv.size(); ++i) xb[i] = Ty<T>::store((C)xv[i]);
  const long long n = s.outer * s.inner;
  // Never-written results show as NaN (floats) or -1 (integers).
  std::vector<unsigned char> out((size_t)n * OUT_BYTES[s.outType], 0xff);
  std::vector<C> part(s.chunks > 1 ? (size_t)(s.chunks * n) : 0, std::numeric_limits<C>::quiet_NaN());
  std::vector<int> partIdx(s.chunks > 1 ? (size_t)(s.chunks * n) : 0, -7);
  C* pp = s.chunks > 1 ? part.data() : nullptr;
  int* pi = s.chunks > 1 && s.op >= 4 ? partIdx.data() : nullptr;
  ColsFn<T> fn = s.vec > 1 ? vector : scalar;
  if (s.vec > 1 && s.vec != ColWidth<T>::V) throw std::runtime_error("planned vector width differs from ColWidth");
  emu::launch((unsigned)s.grid, 256, [&] {
    fn(s.op, xb + s.offset, out.data(), s.outType, pp, pi, s.outer, s.reduced, s.inner, s.so, s.sr, s.tx, s.strips, s.chunkRows);
  });
  if (s.chunks > 1) {
    const unsigned blocks = (unsigned)std::min<long long>((n + 255) / 256, 4);
    emu::launch(blocks, 256, [&] {
      if constexpr (std::is_same<C, float>::value) reduce_cols_finish_f32(s.op, pp, pi, out.data(), s.outType, n, s.chunks);
      else reduce_cols_finish_f64(s.op, pp, pi, out.data(), s.outType, n, s.chunks);
    });
  }
  std::vector<double> result((size_t)n);
  for (long long i = 0; i < n; ++i) result[(size_t)i] = load_dyn(out.data(), s.outType, i);
  writeBin("out", result);
}

}  // namespace

int main(int argc, char** argv) {
  return harnessMain(argc, argv, "reduce-emu", [&] {
    const Spec s = readSpec();
  #define DIMBA_EMU_CASE(name, T) \
    if (s.type == #name) { run<T>(s, reduce_cols_##name, reduce_cols_vec_##name); return; }
    DIMBA_EMU_CASE(f32, float)
    DIMBA_EMU_CASE(f64, double)
    DIMBA_EMU_CASE(bf16, bf16)
    DIMBA_EMU_CASE(f16, f16)
    DIMBA_EMU_CASE(i32, int)
    DIMBA_EMU_CASE(i64, long long)
    DIMBA_EMU_CASE(bool, u8)
    throw std::runtime_error("unknown type " + s.type);
  });
}
