// Row lookups and their scatter-add gradients, on the [outer, size, inner] view of the indexed
// dim (as src/backends/cpu/kernels/indexing.ts). One thread per output (or source) element.
// Negative indices count from the end; an index still out of range is reported through `err`
// (report_index_error) and its element skipped, and the host raises the error after it syncs.
//   index_select_<bytes>_<idx>  out[o, j, i] = x[o, index[j], i]              (raw elements)
//   gather_<bytes>_<idx>        out[o, j, i] = x[o, index[o, j, i], i]        (raw elements)
//   index_add_<dt>_<idx>        out[o, index[j], i] += src[o, j, i]           (atomic adds)
//   scatter_add_<dt>_<idx>      out[o, index[o, j, i], i] += src[o, j, i]     (atomic adds)
// Half-precision outputs accumulate in a float32 copy on the host side of the launcher.
#include "common.cuh"

#define OP_INDEX_SELECT 1
#define OP_INDEX_ADD 2
#define OP_GATHER 3
#define OP_SCATTER_ADD 4

template <class I> __device__ __forceinline__ bool resolve(I raw, long long size, long long& v) {
  v = (long long)raw;
  if (v < 0) v += size;
  return v >= 0 && v < size;
}

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int* p, int v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(long long* p, long long v) {
  atomicAdd((unsigned long long*)p, (unsigned long long)v);  // two's complement: same bits as a signed add
}

template <class E, class I>
__device__ __forceinline__ void index_select_body(const E* x, const I* index, E* out, long long outer, long long size,
    long long count, long long inner, long long* err) {
  const long long n = outer * count * inner;
  DIMBA_FOR_EACH(e, n) {
    const long long i = e % inner;
    const long long t = e / inner;
    const long long j = t % count;
    const long long o = t / count;
    long long v;
    if (!resolve(index[j], size, v)) { report_index_error(err, OP_INDEX_SELECT, (long long)index[j], size); continue; }
    out[e] = x[(o * size + v) * inner + i];
  }
}

template <class E, class I>
__device__ __forceinline__ void gather_body(const E* x, const I* index, E* out, long long outer, long long size,
    long long count, long long inner, long long* err) {
  const long long n = outer * count * inner;
  DIMBA_FOR_EACH(e, n) {
    const long long i = e % inner;
    const long long o = e / (count * inner);
    long long v;
    if (!resolve(index[e], size, v)) { report_index_error(err, OP_GATHER, (long long)index[e], size); continue; }
    out[e] = x[(o * size + v) * inner + i];
  }
}

template <class T, class I>
__device__ __forceinline__ void index_add_body(T* out, const I* index, const T* src, long long outer, long long size,
    long long count, long long inner, long long* err) {
  const long long n = outer * count * inner;
  DIMBA_FOR_EACH(e, n) {
    const long long i = e % inner;
    const long long t = e / inner;
    const long long j = t % count;
    const long long o = t / count;
    long long v;
    if (!resolve(index[j], size, v)) { report_index_error(err, OP_INDEX_ADD, (long long)index[j], size); continue; }
    atomic_add(out + (o * size + v) * inner + i, src[e]);
  }
}

template <class T, class I>
__device__ __forceinline__ void scatter_add_body(T* out, const I* index, const T* src, long long outer, long long size,
    long long count, long long inner, long long* err) {
  const long long n = outer * count * inner;
  DIMBA_FOR_EACH(e, n) {
    const long long i = e % inner;
    const long long o = e / (count * inner);
    long long v;
    if (!resolve(index[e], size, v)) { report_index_error(err, OP_SCATTER_ADD, (long long)index[e], size); continue; }
    atomic_add(out + (o * size + v) * inner + i, src[e]);
  }
}

#define DIMBA_LOOKUP(bytes, E, iname, I) \
  extern "C" __global__ void index_select_##bytes##_##iname(const E* x, const I* index, E* out, long long outer, \
      long long size, long long count, long long inner, long long* err) { \
    index_select_body<E, I>(x, index, out, outer, size, count, inner, err); \
  } \
  extern "C" __global__ void gather_##bytes##_##iname(const E* x, const I* index, E* out, long long outer, \
      long long size, long long count, long long inner, long long* err) { \
    gather_body<E, I>(x, index, out, outer, size, count, inner, err); \
  }
#define DIMBA_LOOKUPS(iname, I) \
  DIMBA_LOOKUP(1, unsigned char, iname, I) DIMBA_LOOKUP(2, unsigned short, iname, I) \
  DIMBA_LOOKUP(4, unsigned int, iname, I) DIMBA_LOOKUP(8, unsigned long long, iname, I)
DIMBA_LOOKUPS(i32, int)
DIMBA_LOOKUPS(i64, long long)

#define DIMBA_SCATTER(name, T, iname, I) \
  extern "C" __global__ void index_add_##name##_##iname(T* out, const I* index, const T* src, long long outer, \
      long long size, long long count, long long inner, long long* err) { \
    index_add_body<T, I>(out, index, src, outer, size, count, inner, err); \
  } \
  extern "C" __global__ void scatter_add_##name##_##iname(T* out, const I* index, const T* src, long long outer, \
      long long size, long long count, long long inner, long long* err) { \
    scatter_add_body<T, I>(out, index, src, outer, size, count, inner, err); \
  }
#define DIMBA_SCATTERS(iname, I) \
  DIMBA_SCATTER(f32, float, iname, I) DIMBA_SCATTER(f64, double, iname, I) \
  DIMBA_SCATTER(i32, int, iname, I) DIMBA_SCATTER(i64, long long, iname, I)
DIMBA_SCATTERS(i32, int)
DIMBA_SCATTERS(i64, long long)
