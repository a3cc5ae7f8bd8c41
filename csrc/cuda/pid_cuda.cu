// CUDA kernels of fastpid. One thread block per distribution; launched on the caller's
// stream; every launch is checked. Inputs and outputs are device pointers owned by the
// Python layer (torch), laid out as in fastpid/pid.hpp.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "fastpid/pid.hpp"
#include "fastpid/pid_cuda.hpp"

namespace fastpid {
namespace {

constexpr int kThreads = 256;

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("fastpid CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

// Sum of v over the block; every thread gets the result.
__device__ double block_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

// Closed-form proxy (see proxy_cpu.cpp): coupling Q0 = P(x1,y) P(x2,y) / P(y) and the dual
// certificate alpha = log P(y|x1), beta = log P(x2|y). scratch holds, per distribution,
// (n1 + n2 + 1) * ny + n1 doubles of marginals.
__global__ void proxy_kernel(const double* __restrict__ P, Shape shape, double tol, SolveOutputs out,
                             double* __restrict__ scratch) {
  __shared__ double red[kThreads];
  const int n1 = shape.n1, n2 = shape.n2, ny = shape.ny;
  const int64_t per = shape.size();
  const int64_t b = blockIdx.x;
  const double* p = P + b * per;
  double* m1 = scratch + b * ((int64_t(n1) + n2 + 1) * ny + n1);
  double* m2 = m1 + int64_t(n1) * ny;
  double* my = m2 + int64_t(n2) * ny;
  double* mx1 = my + ny;

  // Marginals: each thread owns whole rows, so no atomics are needed.
  for (int64_t r = threadIdx.x; r < int64_t(n1) * ny; r += blockDim.x) {
    const int x1 = int(r / ny), y = int(r % ny);
    double s = 0;
    for (int x2 = 0; x2 < n2; ++x2) s += p[(int64_t(x1) * n2 + x2) * ny + y];
    m1[r] = s;
  }
  for (int64_t r = threadIdx.x; r < int64_t(n2) * ny; r += blockDim.x) {
    const int x2 = int(r / ny), y = int(r % ny);
    double s = 0;
    for (int x1 = 0; x1 < n1; ++x1) s += p[(int64_t(x1) * n2 + x2) * ny + y];
    m2[r] = s;
  }
  __syncthreads();
  for (int y = threadIdx.x; y < ny; y += blockDim.x) {
    double s = 0;
    for (int x1 = 0; x1 < n1; ++x1) s += m1[int64_t(x1) * ny + y];
    my[y] = s;
  }
  for (int x1 = threadIdx.x; x1 < n1; x1 += blockDim.x) {
    double s = 0;
    for (int y = 0; y < ny; ++y) s += m1[int64_t(x1) * ny + y];
    mx1[x1] = s;
  }
  __syncthreads();

  double f = 0;
  for (int64_t c = threadIdx.x; c < int64_t(n1) * n2; c += blockDim.x) {
    const int x1 = int(c / n2), x2 = int(c % n2);
    double mass = 0, ent = 0;
    for (int y = 0; y < ny; ++y) {
      const double q = my[y] > 0 ? m1[int64_t(x1) * ny + y] * m2[int64_t(x2) * ny + y] / my[y] : 0.0;
      mass += q;
      ent += xlogx(q);
      if (out.coupling) out.coupling[b * per + c * ny + y] = q;
    }
    f += ent - xlogx(mass);
  }
  double dual = 0;
  for (int64_t r = threadIdx.x; r < int64_t(n1) * ny; r += blockDim.x) {
    const double v = m1[r];
    const double alpha = v > 0 ? log(v / mx1[r / ny]) : 0.0;
    dual += v * alpha;
    if (out.dual1) out.dual1[b * int64_t(n1) * ny + r] = alpha;
  }
  for (int64_t r = threadIdx.x; r < int64_t(n2) * ny; r += blockDim.x) {
    const double v = m2[r];
    const double beta = v > 0 ? log(v / my[r % ny]) : 0.0;
    dual += v * beta;
    if (out.dual2) out.dual2[b * int64_t(n2) * ny + r] = beta;
  }
  f = block_sum(f, red);
  dual = block_sum(dual, red);
  if (threadIdx.x == 0) {
    const double bound = f - dual > 0 ? f - dual : 0.0;
    out.value[b] = -f;
    out.bound[b] = bound;
    out.converged[b] = bound <= tol && isfinite(f);
    out.iterations[b] = 0;
  }
}

}  // namespace

int64_t proxy_cuda_scratch_doubles(Shape shape) {
  return shape.batch * ((int64_t(shape.n1) + shape.n2 + 1) * shape.ny + shape.n1);
}

void proxy_cuda(const double* P, Shape shape, SolverOptions options, SolveOutputs out, double* scratch,
                void* stream) {
  if (shape.batch == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  proxy_kernel<<<dim3(unsigned(shape.batch)), dim3(kThreads), 0, s>>>(P, shape, options.tol, out, scratch);
  check(cudaGetLastError(), "proxy_kernel launch");
}

}  // namespace fastpid
