// Host cost of cuLaunchKernel from C, for issue 7's bar (a launch through our FFI may cost at
// most 1 us more). Built and run by bench/cuda/launch-overhead.ts on the GPU machine:
//   nvcc -O2 -o /tmp/launch_c bench/cuda/launch_c.cu -lcuda && /tmp/launch_c 20000
// Prints one JSON line: microseconds per launch (median of 7 rounds).
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "launch-noop.cuh"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  float *p;
  cudaFree(0);
  cudaMalloc(&p, 16);
  CUfunction fn;
  if (cudaGetFuncBySymbol(&fn, (const void *)launch_noop) != cudaSuccess) { fprintf(stderr, "no function\n"); return 1; }
  CUstream stream;
  cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING);
  long long count = 16;
  float v = 1.0f;
  void *params[3] = {&p, &count, &v};
  for (int i = 0; i < 2000; i++) cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, stream, params, 0);
  cuStreamSynchronize(stream);
  double rounds[7];
  for (int r = 0; r < 7; r++) {
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
      count = 16 + (i & 1);  // the parameter block is rewritten per launch, as ours is
      cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, stream, params, 0);
    }
    rounds[r] = (now_us() - t0) / n;
    cuStreamSynchronize(stream);
  }
  qsort(rounds, 7, sizeof(double), cmp);
  printf("{\"c_us_per_launch\": %.3f, \"min\": %.3f, \"max\": %.3f}\n", rounds[3], rounds[0], rounds[6]);
  return 0;
}
