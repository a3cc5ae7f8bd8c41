// exp and log for the CPU kernels' hot loops, written so that a loop of them vectorises.
//
// libm's exp and log are function calls the compiler cannot vectorise (without -ffast-math),
// and on a 20x20x6 histogram the exact solver spent 7% of its time inside them (perf, one
// thread): 2,400 exps per iteration for the cells' softmax, 2,800 logs per rounded
// certificate. These are branch-free, inline and use only double and 64-bit integer
// arithmetic, so `#pragma omp simd` loops over them become vector code; their results are
// within 1 ulp of libm's (tests/test_elementary.py measures it over the whole range, subnormals
// included). On the device they are CUDA's exp and log.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FASTPID_HD_INLINE __host__ __device__ inline
#define FASTPID_PRAGMA(x)
#else
#define FASTPID_HD_INLINE inline
#define FASTPID_PRAGMA(x) _Pragma(#x)
#endif

namespace fastpid {
namespace elementary_detail {

inline double from_bits(uint64_t u) {
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
}
inline uint64_t to_bits(double d) {
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

constexpr double kShifter = 6755399441055744.0;  // 1.5 * 2^52: x + kShifter rounds x to an integer in the low bits
constexpr double kLog2e = 1.4426950408889634;
// ln 2 split so that k * kLn2Hi is exact for |k| < 2^11 (its low 11 bits are zero).
constexpr double kLn2Hi = 0.6931471803691238;
constexpr double kLn2Lo = 1.9082149292705877e-10;

// Coefficients, highest degree first: 1/k! for k = 13 .. 0 (e^r), and 1/(2k+1) for k = 11 .. 1
// (atanh(s) / s - 1 = z / 3 + z^2 / 5 + ..., as a polynomial in z = s^2, divided by z).
constexpr double kExpTaylor[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                                 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
constexpr double kAtanhSeries[] = {1.0 / 23.0, 1.0 / 21.0, 1.0 / 19.0, 1.0 / 17.0, 1.0 / 15.0, 1.0 / 13.0,
                                   1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0};

// The polynomial with coefficients c (highest degree first) at x, by Horner's rule.
template <int N>
inline double horner(const double (&c)[N], double x) {
  double p = c[0];
  for (int i = 1; i < N; ++i) p = p * x + c[i];
  return p;
}

// 2^k for an integer-valued double k in [-1100, 1100] whose shifted form t = k + kShifter is
// given: (bits(t) + 1023) << 52 keeps k + 1023 in the exponent field (the shifter's own bits
// leave through the top).
inline double two_to(double t) { return from_bits((to_bits(t) + 1023) << 52); }

}  // namespace elementary_detail

// e^x for every double x: 0 below -745.2, +inf above 709.8, NaN for NaN.
FASTPID_HD_INLINE double simd_exp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  using namespace elementary_detail;
  // Clamped so that k stays in two_to's range; the clamped ends still under- and overflow.
  const double xc = x < -760.0 ? -760.0 : (x > 720.0 ? 720.0 : x);
  const double t = xc * kLog2e + kShifter;
  const double k = t - kShifter;  // nearest integer to x / ln 2
  const double r = (xc - k * kLn2Hi) - k * kLn2Lo;  // |r| <= 0.347
  // e^r by its Taylor polynomial of degree 13 (truncation below 5e-18 relative).
  const double p = horner(kExpTaylor, r);
  // p * 2^k as p * 2^k1 * 2^k2 with k1 = k / 2 rounded: both factors are normal numbers, the
  // first product is exact and the second rounds once, also where the result is subnormal.
  const double t1 = k * 0.5 + kShifter;
  const double t2 = (k - (t1 - kShifter)) + kShifter;
  const double y = p * two_to(t1) * two_to(t2);
  return x == x ? y : x;
#endif
}

// log x for every double x >= 0: -inf at 0, +inf at +inf, NaN below 0 and for NaN.
FASTPID_HD_INLINE double simd_log(double x) {
#if defined(__CUDA_ARCH__)
  return ::log(x);
#else
  using namespace elementary_detail;
  constexpr double kMinNormal = 2.2250738585072014e-308;
  const bool subnormal = x < kMinNormal;
  const double xs = subnormal ? x * 18014398509481984.0 : x;  // * 2^54
  // x = 2^e m with m in [sqrt(1/2), sqrt(2)): e from the exponent bits of x / sqrt(1/2).
  const uint64_t u = to_bits(xs) - 0x3fe6a09e667f3bcdULL;
  const uint64_t top = u >> 52;  // e mod 4096
  const double m = from_bits(to_bits(xs) - (top << 52));
  // e as a double without a 64-bit integer conversion: 2^52 + (e + 2048), minus the offsets.
  const double e = from_bits(0x4330000000000000ULL + ((top + 2048) & 4095)) - (4503599627370496.0 + 2048.0) -
                   (subnormal ? 54.0 : 0.0);
  // log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716: its series to s^23 (truncation
  // below 1e-18 relative).
  const double f = m - 1.0;
  const double s = f / (2.0 + f);
  const double z = s * s;
  const double q = horner(kAtanhSeries, z);
  const double log_m = f - s * (f - 2.0 * z * q);  // 2 s (1 + z q), written around f = m - 1
  const double y = e * kLn2Hi + (log_m + e * kLn2Lo);
  // The special values: 0 -> -inf, +inf -> +inf, negative or NaN -> NaN.
  return x > 0 ? (x < HUGE_VAL ? y : x) : (x == 0 ? -HUGE_VAL : NAN);
#endif
}

}  // namespace fastpid
