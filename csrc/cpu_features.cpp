// fastpid._cpu: what the running CPU (and the operating system, which must save the wide
// registers) supports, so that fastpid/_C.py can load the best core module of a portable
// build. Compiled for the baseline of the architecture: it must load everywhere.
#include <pybind11/pybind11.h>

#include <string>

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#endif

namespace py = pybind11;

namespace {

// The x86-64 micro-architecture levels (x86-64 psABI): the highest of 1 (baseline), 3 (AVX2,
// FMA, BMI1/2, ...) and 4 (AVX-512 F, BW, CD, DQ, VL) that the CPU and the OS support; 0 off x86.
int x86_64_level() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
                  __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("avx") && __builtin_cpu_supports("popcnt");
  const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512vl");
  return v4 ? 4 : v3 ? 3 : 1;
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
  int r[4];
  __cpuid(r, 0);
  if (r[0] < 7) return 1;
  __cpuid(r, 1);
  const bool fma = r[2] & (1 << 12), osxsave = r[2] & (1 << 27), avx = r[2] & (1 << 28), popcnt = r[2] & (1 << 23);
  if (!(osxsave && avx && fma && popcnt)) return 1;
  const unsigned long long xcr0 = _xgetbv(0);
  if ((xcr0 & 0x6) != 0x6) return 1;  // the OS saves SSE and AVX state
  __cpuidex(r, 7, 0);
  const bool avx2 = r[1] & (1 << 5), bmi1 = r[1] & (1 << 3), bmi2 = r[1] & (1 << 8);
  if (!(avx2 && bmi1 && bmi2)) return 1;
  const bool avx512 = (r[1] & (1 << 16)) && (r[1] & (1 << 17)) && (r[1] & (1 << 28)) && (r[1] & (1 << 30)) &&
                      (r[1] & (1u << 31));
  return avx512 && (xcr0 & 0xe6) == 0xe6 ? 4 : 3;  // and the opmask and upper ZMM state
#else
  return 0;
#endif
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "What the running CPU supports (for the choice of fastpid's core module).";
  m.def("x86_64_level", &x86_64_level,
        "The highest x86-64 level (1 baseline, 3 AVX2+FMA, 4 AVX-512) the CPU and OS support; 0 on other architectures.");
}
