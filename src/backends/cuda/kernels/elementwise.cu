// Elementwise arithmetic, the op chosen by a run-time code that is the same for every thread (a
// uniform branch). Formulas follow the CPU kernels in src/backends/cpu/kernels/elementwise.ts and
// math.ts. Every op has three loops over the same per-element functor (so results do not depend
// on which one runs), picked by the host (layout.ts planMap):
//   <kernel>_rows_<dt>     32-bit indices, 16-byte vector loads/stores along a contiguous or
//                          broadcast innermost dim (common.cuh map_rows)
//   <kernel>_strided_<dt>  32-bit indices, any strides, one element per step (map_strided)
//   <kernel>_<dt>          64-bit indices (tensors past int32 offsets); unary ones contiguous
// Kernels (operand 0 the output; the rows/strided ones take common.cuh's Map and Rows or n):
//   unary             y = op(x), same dtype
//   unary_pred        bool y = op(x) for logical_not / isnan / isinf
//   unary_backward    gx = gy * op'(x), same dtype
//   binary            out = op(a, b); a, b strided views of out's shape (stride 0 = broadcast)
//   binary_cmp        bool out for comparisons and logical ops
//   where_<bytes>     out = cond ? a : b, raw elements
// Op codes are the positions in UNARY_OPS / BINARY_OPS of kernels/elementwise.ts. The vector
// kernels exist for the hot ops on float32/bfloat16/float16 only (ROWS_UNARY / ROWS_BINARY in
// elementwise.ts; the others run strided, which is correct for any layout): each has the op
// switch outside its loop (one loop per op), since a switch inside a loop unrolled VEC times
// multiplies the code and NVRTC's compile time (~8x for the whole switch).
#include "common.cuh"

template <class C> __device__ __forceinline__ C sigmoid(C x) {
  if (x >= (C)0) return (C)1 / ((C)1 + m_exp(-x));
  const C e = m_exp(x);
  return e / ((C)1 + e);
}

template <class C> __device__ __forceinline__ C gelu_tanh_inner(C x) {
  return m_tanh((C)0.7978845608028654 * (x + (C)0.044715 * x * x * x));
}

template <class C> __device__ C unary_op(int op, C x, C p0, C p1) {
  switch (op) {
    case 0: return -x;                                              // neg
    case 1: return m_exp(x);                                        // exp
    case 2: return m_log(x);                                        // log
    case 3: return m_sqrt(x);                                       // sqrt
    case 4: return (C)1 / m_sqrt(x);                                // rsqrt
    case 5: return m_abs(x);                                        // abs
    case 6: return x > (C)0 ? (C)1 : x < (C)0 ? (C)-1 : x;          // sign (keeps -0 and NaN)
    case 7: return m_tanh(x);                                       // tanh
    case 8: return sigmoid(x);                                      // sigmoid
    case 9: return x * sigmoid(x);                                  // silu
    case 10: return x > (C)0 ? x : (C)0;                            // relu
    case 11: return (C)0.5 * x * ((C)1 + m_erf(x * (C)0.7071067811865476));  // gelu
    case 12: return (C)0.5 * x * ((C)1 + gelu_tanh_inner(x));       // gelu_tanh
    case 13: return x > (C)20 ? x : m_log1p(m_exp(x));              // softplus, linear above 20 as PyTorch
    case 14: return m_sin(x);
    case 15: return m_cos(x);
    case 16: return x * x;                                          // square
    case 17: return (C)1 / x;                                       // reciprocal
    case 18: return m_isnan(x) ? x : x < p0 ? p0 : x > p1 ? p1 : x; // clamp(min = p0, max = p1)
    case 19: return p0 == (C)2 ? x * x : m_pow(x, p0);              // pow_scalar(exponent = p0)
    case 20: return m_floor(x);
    case 21: return x == (C)0 ? (C)1 : (C)0;                        // logical_not
    case 22: return m_isnan(x) ? (C)1 : (C)0;                       // isnan
    case 23: return (x == -neg_inf<C>() || x == neg_inf<C>()) ? (C)1 : (C)0;  // isinf
    default: return x;
  }
}

template <class C> __device__ C unary_derivative(int op, C x, C p0, C p1) {
  switch (op) {
    case 0: return (C)-1;
    case 1: return m_exp(x);
    case 2: return (C)1 / x;
    case 3: return (C)0.5 / m_sqrt(x);
    case 4: return (C)-0.5 / (x * m_sqrt(x));
    case 5: return x > (C)0 ? (C)1 : x < (C)0 ? (C)-1 : (C)0;
    case 7: { const C t = m_tanh(x); return (C)1 - t * t; }
    case 8: { const C s = sigmoid(x); return s * ((C)1 - s); }
    case 9: { const C s = sigmoid(x); return s * ((C)1 + x * ((C)1 - s)); }
    case 10: return x > (C)0 ? (C)1 : (C)0;
    case 11: return (C)0.5 * ((C)1 + m_erf(x * (C)0.7071067811865476)) + x * (C)0.3989422804014327 * m_exp((C)-0.5 * x * x);
    case 12: {
      const C t = gelu_tanh_inner(x);
      return (C)0.5 * ((C)1 + t) + (C)0.5 * x * ((C)1 - t * t) * (C)0.7978845608028654 * ((C)1 + (C)3 * (C)0.044715 * x * x);
    }
    case 13: return x > (C)20 ? (C)1 : sigmoid(x);
    case 14: return m_cos(x);
    case 15: return -m_sin(x);
    case 16: return (C)2 * x;
    case 17: return (C)-1 / (x * x);
    case 18: return (x >= p0 && x <= p1) ? (C)1 : (C)0;
    case 19: return p0 == (C)0 ? (C)0 : p0 * m_pow(x, p0 - (C)1);
    default: return (C)0;  // sign, floor, logical_not, isnan, isinf
  }
}

template <class T, class O>
__device__ __forceinline__ void unary_body(int op, const T* x, O* y, long long n, double p0, double p1) {
  typedef typename Ty<T>::C C;
  const C q0 = (C)p0, q1 = (C)p1;
  DIMBA_FOR_EACH(i, n) y[i] = Ty<O>::store(unary_op<C>(op, Ty<T>::load(x[i]), q0, q1));
}

template <class T>
__device__ __forceinline__ void unary_backward_body(int op, const T* x, const T* gy, T* gx, long long n, double p0, double p1) {
  typedef typename Ty<T>::C C;
  const C q0 = (C)p0, q1 = (C)p1;
  DIMBA_FOR_EACH(i, n) gx[i] = Ty<T>::store(Ty<T>::load(gy[i]) * unary_derivative<C>(op, Ty<T>::load(x[i]), q0, q1));
}

template <class C> __device__ C binary_op(int op, C a, C b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return m_pow(a, b);
    case 5: return (m_isnan(a) || a > b) ? a : b;   // maximum: NaN in either propagates
    case 6: return (m_isnan(a) || a < b) ? a : b;   // minimum
    case 7: return m_atan2(a, b);
    case 8: return a == b ? (C)1 : (C)0;
    case 9: return a != b ? (C)1 : (C)0;
    case 10: return a < b ? (C)1 : (C)0;
    case 11: return a <= b ? (C)1 : (C)0;
    case 12: return a > b ? (C)1 : (C)0;
    case 13: return a >= b ? (C)1 : (C)0;
    case 14: return (a != (C)0 && b != (C)0) ? (C)1 : (C)0;
    case 15: return (a != (C)0 || b != (C)0) ? (C)1 : (C)0;
    default: return a;
  }
}

template <class T, class O>
__device__ __forceinline__ void binary_body(int op, const Dims& d, const Strides& sa, const Strides& sb,
    const T* a, const T* b, O* out, long long n) {
  typedef typename Ty<T>::C C;
  DIMBA_FOR_EACH(i, n) {
    long long oa, ob;
    offset2(i, d, sa, sb, oa, ob);
    out[i] = Ty<O>::store(binary_op<C>(op, Ty<T>::load(a[oa]), Ty<T>::load(b[ob])));
  }
}

#define DIMBA_ELEMENTWISE(name, T) \
  extern "C" __global__ void unary_##name(int op, const T* x, T* y, long long n, double p0, double p1) { \
    unary_body<T, T>(op, x, y, n, p0, p1); \
  } \
  extern "C" __global__ void unary_pred_##name(int op, const T* x, u8* y, long long n, double p0, double p1) { \
    unary_body<T, u8>(op, x, y, n, p0, p1); \
  } \
  extern "C" __global__ void unary_backward_##name(int op, const T* x, const T* gy, T* gx, long long n, double p0, double p1) { \
    unary_backward_body<T>(op, x, gy, gx, n, p0, p1); \
  } \
  extern "C" __global__ void binary_##name(int op, const Dims d, const Strides sa, const Strides sb, \
      const T* a, const T* b, T* out, long long n) { \
    binary_body<T, T>(op, d, sa, sb, a, b, out, n); \
  } \
  extern "C" __global__ void binary_cmp_##name(int op, const Dims d, const Strides sa, const Strides sb, \
      const T* a, const T* b, u8* out, long long n) { \
    binary_body<T, u8>(op, d, sa, sb, a, b, out, n); \
  }
#if DIMBA_WANTS(0)
DIMBA_ELEMENTWISE(f32, float)
#endif
#if DIMBA_WANTS(1)
DIMBA_ELEMENTWISE(f64, double)
#endif
#if DIMBA_WANTS(2)
DIMBA_ELEMENTWISE(bf16, bf16)
#endif
#if DIMBA_WANTS(3)
DIMBA_ELEMENTWISE(f16, f16)
#endif
#if DIMBA_WANTS(4)
DIMBA_ELEMENTWISE(i32, int)
#endif
#if DIMBA_WANTS(5)
DIMBA_ELEMENTWISE(i64, long long)
#endif
#if DIMBA_WANTS(6)
DIMBA_ELEMENTWISE(bool, u8)
#endif

#define DIMBA_WHERE(bytes, E) \
  extern "C" __global__ void where_##bytes(const Dims d, const Strides sc, const Strides sa, const Strides sb, \
      const u8* cond, const E* a, const E* b, E* out, long long n) { \
    DIMBA_FOR_EACH(i, n) { \
      long long oc, oa, ob; \
      offset3(i, d, sc, sa, sb, oc, oa, ob); \
      out[i] = cond[oc] ? a[oa] : b[ob]; \
    } \
  }
DIMBA_WHERE(1, unsigned char)
DIMBA_WHERE(2, unsigned short)
DIMBA_WHERE(4, unsigned int)
DIMBA_WHERE(8, unsigned long long)

// ------------------------------------------------------------------------------------------
// 32-bit kernels: per-element functors for common.cuh map_rows / map_strided.

template <class T, class O> struct UnaryF {
  int op;
  typename Ty<T>::C p0, p1;
  __device__ __forceinline__ O operator()(T x, u8, u8) const {
    return Ty<O>::store(unary_op<typename Ty<T>::C>(op, Ty<T>::load(x), p0, p1));
  }
};

template <class T, int OP> struct UnaryK {
  __device__ __forceinline__ T operator()(T x, u8, u8) const {
    typedef typename Ty<T>::C C;
    return Ty<T>::store(unary_op<C>(OP, Ty<T>::load(x), (C)0, (C)0));
  }
};

template <class T> struct UnaryBackwardF {
  int op;
  typename Ty<T>::C p0, p1;
  __device__ __forceinline__ T operator()(T x, T gy, u8) const {
    return Ty<T>::store(Ty<T>::load(gy) * unary_derivative<typename Ty<T>::C>(op, Ty<T>::load(x), p0, p1));
  }
};

template <class T, int OP> struct UnaryBackwardK {
  __device__ __forceinline__ T operator()(T x, T gy, u8) const {
    typedef typename Ty<T>::C C;
    return Ty<T>::store(Ty<T>::load(gy) * unary_derivative<C>(OP, Ty<T>::load(x), (C)0, (C)0));
  }
};

template <class T, class O> struct BinaryF {
  int op;
  __device__ __forceinline__ O operator()(T a, T b, u8) const {
    return Ty<O>::store(binary_op<typename Ty<T>::C>(op, Ty<T>::load(a), Ty<T>::load(b)));
  }
};

template <class T, int OP> struct BinaryK {
  __device__ __forceinline__ T operator()(T a, T b, u8) const {
    return Ty<T>::store(binary_op<typename Ty<T>::C>(OP, Ty<T>::load(a), Ty<T>::load(b)));
  }
};

template <class E> struct WhereF {
  __device__ __forceinline__ E operator()(u8 c, E a, E b) const { return c ? a : b; }
};

#define DIMBA_VEC(T) (16 / (int)sizeof(T))

// The vector kernels' ops: keep in step with ROWS_UNARY and ROWS_BINARY in elementwise.ts (an
// op missing here traps rather than writing nothing). None takes the scalars p0 / p1.
#define DIMBA_ROWS_UNARY(X) X(0) X(1) X(3) X(4) X(8) X(9) X(11) X(12) X(13) X(16)
#define DIMBA_ROWS_BINARY(X) X(0) X(1) X(2) X(3) X(5) X(6)

#define DIMBA_UNARY_CASE(k) case k: map_rows<1, DIMBA_VEC(T)>(UnaryK<T, k>(), L, g, y, x, none, none); break;
template <class T> __device__ __forceinline__ void unary_rows(int op, const Map& L, const Rows& g, T* y, const T* x) {
  const u8* none = 0;
  switch (op) {
    DIMBA_ROWS_UNARY(DIMBA_UNARY_CASE)
    default: __trap();
  }
}

#define DIMBA_UNARY_BACKWARD_CASE(k) case k: map_rows<2, DIMBA_VEC(T)>(UnaryBackwardK<T, k>(), L, g, gx, x, gy, none); break;
template <class T> __device__ __forceinline__ void unary_backward_rows(int op, const Map& L, const Rows& g, T* gx, const T* x, const T* gy) {
  const u8* none = 0;
  switch (op) {
    DIMBA_ROWS_UNARY(DIMBA_UNARY_BACKWARD_CASE)
    default: __trap();
  }
}

#define DIMBA_BINARY_CASE(k) case k: map_rows<2, DIMBA_VEC(T)>(BinaryK<T, k>(), L, g, out, a, b, none); break;
template <class T> __device__ __forceinline__ void binary_rows(int op, const Map& L, const Rows& g, T* out, const T* a, const T* b) {
  const u8* none = 0;
  switch (op) {
    DIMBA_ROWS_BINARY(DIMBA_BINARY_CASE)
    default: __trap();
  }
}

#define DIMBA_ELEMENTWISE_ROWS(name, T) \
  extern "C" __global__ void unary_rows_##name(int op, const Map L, const Rows g, T* y, const T* x) { \
    unary_rows<T>(op, L, g, y, x); \
  } \
  extern "C" __global__ void unary_backward_rows_##name(int op, const Map L, const Rows g, T* gx, const T* x, const T* gy) { \
    unary_backward_rows<T>(op, L, g, gx, x, gy); \
  } \
  extern "C" __global__ void binary_rows_##name(int op, const Map L, const Rows g, T* out, const T* a, const T* b) { \
    binary_rows<T>(op, L, g, out, a, b); \
  }
#if DIMBA_WANTS(0)
DIMBA_ELEMENTWISE_ROWS(f32, float)
#endif
#if DIMBA_WANTS(2)
DIMBA_ELEMENTWISE_ROWS(bf16, bf16)
#endif
#if DIMBA_WANTS(3)
DIMBA_ELEMENTWISE_ROWS(f16, f16)
#endif

#define DIMBA_ELEMENTWISE_STRIDED(name, T) \
  extern "C" __global__ void unary_strided_##name(int op, const Map L, long long n, T* y, const T* x, double p0, double p1) { \
    const u8* none = 0; \
    map_strided<1>(UnaryF<T, T>{op, (Ty<T>::C)p0, (Ty<T>::C)p1}, L, n, y, x, none, none); \
  } \
  extern "C" __global__ void unary_pred_strided_##name(int op, const Map L, long long n, u8* y, const T* x, double p0, double p1) { \
    const u8* none = 0; \
    map_strided<1>(UnaryF<T, u8>{op, (Ty<T>::C)p0, (Ty<T>::C)p1}, L, n, y, x, none, none); \
  } \
  extern "C" __global__ void unary_backward_strided_##name(int op, const Map L, long long n, T* gx, const T* x, const T* gy, \
      double p0, double p1) { \
    const u8* none = 0; \
    map_strided<2>(UnaryBackwardF<T>{op, (Ty<T>::C)p0, (Ty<T>::C)p1}, L, n, gx, x, gy, none); \
  } \
  extern "C" __global__ void binary_strided_##name(int op, const Map L, long long n, T* out, const T* a, const T* b) { \
    const u8* none = 0; \
    map_strided<2>(BinaryF<T, T>{op}, L, n, out, a, b, none); \
  } \
  extern "C" __global__ void binary_cmp_strided_##name(int op, const Map L, long long n, u8* out, const T* a, const T* b) { \
    const u8* none = 0; \
    map_strided<2>(BinaryF<T, u8>{op}, L, n, out, a, b, none); \
  }
#if DIMBA_WANTS(0)
DIMBA_ELEMENTWISE_STRIDED(f32, float)
#endif
#if DIMBA_WANTS(1)
DIMBA_ELEMENTWISE_STRIDED(f64, double)
#endif
#if DIMBA_WANTS(2)
DIMBA_ELEMENTWISE_STRIDED(bf16, bf16)
#endif
#if DIMBA_WANTS(3)
DIMBA_ELEMENTWISE_STRIDED(f16, f16)
#endif
#if DIMBA_WANTS(4)
DIMBA_ELEMENTWISE_STRIDED(i32, int)
#endif
#if DIMBA_WANTS(5)
DIMBA_ELEMENTWISE_STRIDED(i64, long long)
#endif
#if DIMBA_WANTS(6)
DIMBA_ELEMENTWISE_STRIDED(bool, u8)
#endif

#define DIMBA_WHERE32(bytes, E) \
  extern "C" __global__ void where_rows_##bytes(const Map L, const Rows g, E* out, const u8* cond, const E* a, const E* b) { \
    map_rows<3, DIMBA_VEC(E)>(WhereF<E>(), L, g, out, cond, a, b); \
  } \
  extern "C" __global__ void where_strided_##bytes(const Map L, long long n, E* out, const u8* cond, const E* a, const E* b) { \
    map_strided<3>(WhereF<E>(), L, n, out, cond, a, b); \
  }
DIMBA_WHERE32(1, unsigned char)
DIMBA_WHERE32(2, unsigned short)
DIMBA_WHERE32(4, unsigned int)
DIMBA_WHERE32(8, unsigned long long)
