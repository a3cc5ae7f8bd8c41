// The pybind11 module fastpid._C: thin wrappers that take validated, contiguous float64
// arrays of shape (batch, n1, n2, ny) from the Python layer and return the per-distribution
// solver outputs as numpy arrays. No torch here: Python owns devices and dtypes.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "cpu/run_control.hpp"
#include "fastpid/exact_team_algebra.hpp"
#include "fastpid/pid.hpp"
#include "fastpid/proxy.hpp"
#include "fastpid/refine.hpp"
#include "fastpid/union.hpp"
#ifdef FASTPID_WITH_CUDA
#include "fastpid/pid_cuda.hpp"
#endif

namespace py = pybind11;
using fastpid::Shape;
using fastpid::SolveOutputs;
using fastpid::SolverOptions;

namespace {

std::vector<int> ints_of(const py::sequence& seq) {
  std::vector<int> out;
  for (const py::handle& item : seq) out.push_back(item.cast<int>());
  return out;
}

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

// (n1, ..., nk, ny) of a k-source batch P (batch, n1, ..., nk, ny), 2 <= k <= kMaxSources.
std::vector<int> union_dims(const py::array& P) {
  if (P.ndim() < 4) throw std::invalid_argument("expected an array of shape (batch, n1, ..., nk, ny) with k >= 2");
  if (P.ndim() - 2 > fastpid::kMaxSources) throw std::invalid_argument("at most 8 sources");
  std::vector<int> dims;
  for (int a = 1; a < P.ndim(); ++a) dims.push_back(int(P.shape(a)));
  return dims;
}

// The k-source solver's outputs for a batch, as numpy arrays, and their dict for Python.
struct UnionArrays {
  py::array_t<double> value, bound, dual;
  py::array_t<uint8_t> converged;
  py::array_t<int32_t> iterations;
  UnionArrays(int64_t batch, int full) : value(batch), bound(batch), dual({batch, int64_t(full)}), converged(batch), iterations(batch) {}
  py::dict dict() const {
    py::dict result;
    result["value"] = value;
    result["bound"] = bound;
    result["converged"] = converged.attr("astype")("bool");
    result["iterations"] = iterations;
    result["dual"] = dual;
    return result;
  }
};

Shape shape_of(const Array& P) {
  if (P.ndim() != 4) throw std::invalid_argument("expected an array of shape (batch, n1, n2, ny)");
  return Shape{P.shape(0), int(P.shape(1)), int(P.shape(2)), int(P.shape(3))};
}

// The stop poll of the CPU batch calls (run_control.hpp): Python's signal handlers, run on the
// main thread, with the GIL (elsewhere PyErr_CheckSignals does nothing). A handler that raises
// (KeyboardInterrupt on Ctrl-C) leaves its exception set, and the call stops.
bool python_stop_poll() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// After a batch call stopped on the poll: the exception its signal handler raised.
[[noreturn]] void raise_interruption() {
  if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
  throw py::error_already_set();
}

template <typename Kernel>
py::dict run(Kernel kernel, const Array& P, SolverOptions opt, bool coupling, bool duals) {
  const Shape s = shape_of(P);
  py::array_t<double> value(s.batch), bound(s.batch);
  py::array_t<uint8_t> converged(s.batch);
  py::array_t<int32_t> iterations(s.batch);
  py::dict result;
  SolveOutputs out;
  out.value = value.mutable_data();
  out.bound = bound.mutable_data();
  out.converged = converged.mutable_data();
  out.iterations = iterations.mutable_data();
  if (coupling) {
    py::array_t<double> q({s.batch, int64_t(s.n1), int64_t(s.n2), int64_t(s.ny)});
    out.coupling = q.mutable_data();
    result["coupling"] = q;
  }
  if (duals) {
    py::array_t<double> d1({s.batch, int64_t(s.n1), int64_t(s.ny)});
    py::array_t<double> d2({s.batch, int64_t(s.n2), int64_t(s.ny)});
    out.dual1 = d1.mutable_data();
    out.dual2 = d2.mutable_data();
    result["dual1"] = d1;
    result["dual2"] = d2;
  }
  const double* p = P.data();
  bool interrupted = false;
  {
    py::gil_scoped_release release;
    try {
      kernel(p, s, opt, out);
    } catch (const fastpid::Interrupted&) {
      interrupted = true;
    }
  }
  if (interrupted) raise_interruption();
  result["value"] = value;
  result["bound"] = bound;
  result["converged"] = converged.attr("astype")("bool");
  result["iterations"] = iterations;
  return result;
}

SolverOptions options(double tol, int max_iter, int scaling_iters = 200) {
  SolverOptions opt;
  opt.tol = tol;
  opt.max_iter = max_iter;
  opt.scaling_iters = scaling_iters;
  return opt;
}

SolverOptions refine_options(double tol, int max_iter, int scaling_iters, double penalty, double penalty_growth) {
  if (!(penalty > 0) || !(penalty_growth >= 1)) throw std::invalid_argument("penalty must be > 0 and penalty_growth >= 1");
  SolverOptions opt = options(tol, max_iter, scaling_iters);
  opt.penalty = penalty;
  opt.penalty_growth = penalty_growth;
  return opt;
}

// A batch kernel of fastpid/pid.hpp bound to its thread count.
auto on_threads(void (*kernel)(const double*, Shape, SolverOptions, SolveOutputs, int), int threads) {
  return [kernel, threads](const double* p, Shape s, SolverOptions opt, SolveOutputs out) { kernel(p, s, opt, out, threads); };
}

}  // namespace

PYBIND11_MODULE(FASTPID_MODULE, m) {
  m.doc() = "fastpid native kernels (CPU, and CUDA when compiled)";
  fastpid::set_stop_poll(python_stop_poll);
  m.def(
      "exact_cpu",
      [](const Array& P, double tol, int max_iter, bool coupling, bool duals, int threads, int elimination,
         bool mixed_precision) {
        if (elimination < 0 || elimination > 2) throw std::invalid_argument("elimination must be 0, 1 or 2");
        SolverOptions opt = options(tol, max_iter);
        opt.elimination = elimination;
        opt.mixed_precision = mixed_precision;
        return run(on_threads(fastpid::exact_cpu, threads), P, opt, coupling, duals);
      },
      py::arg("P"), py::arg("tol"), py::arg("max_iter"), py::arg("coupling") = false,
      py::arg("duals") = false, py::arg("threads") = 0, py::arg("elimination") = 0, py::arg("mixed_precision") = true,
      "Exact solve of every distribution in P (batch, n1, n2, ny); tol in nats. elimination: 0 picks the "
      "Newton-system elimination with the smaller dense factor per distribution, 1 forces the sources' "
      "side, 2 the cells (for tests). mixed_precision=False keeps every Schur complement in double "
      "(for tests).");
  m.def(
      "exact_newton_residual",
      [](const Array& P, int elimination, bool mixed_precision) {
        if (P.ndim() != 3) throw std::invalid_argument("P must have shape (n1, n2, ny)");
        if (elimination < 0 || elimination > 2) throw std::invalid_argument("elimination must be 0, 1 or 2");
        SolverOptions opt = options(1e-7, 100);
        opt.elimination = elimination;
        opt.mixed_precision = mixed_precision;
        const Shape shape{1, int(P.shape(0)), int(P.shape(1)), int(P.shape(2))};
        return fastpid::exact_newton_residual_cpu(P.data(), shape, opt);
      },
      py::arg("P"), py::arg("elimination"), py::arg("mixed_precision") = false,
      "The exact solver's Newton system at the start point of one distribution P (n1, n2, ny), "
      "factorised and solved by the CPU algebra for a fixed right-hand side; returns the residual "
      "evaluated from the triples over the right-hand side, max norms (for tests).");
  m.def(
      "refine_cpu",
      [](const Array& P, double tol, int max_iter, bool coupling, bool duals, int threads, int scaling_iters,
         double penalty, double penalty_growth) {
        return run(on_threads(fastpid::refine_cpu, threads), P,
                   refine_options(tol, max_iter, scaling_iters, penalty, penalty_growth), coupling, duals);
      },
      py::arg("P"), py::arg("tol"), py::arg("max_iter"), py::arg("coupling") = false,
      py::arg("duals") = false, py::arg("threads") = 0, py::arg("scaling_iters") = 200,
      py::arg("penalty") = 100.0, py::arg("penalty_growth") = 3.0,
      "Refinement (iterative scaling, then semismooth Newton) of every distribution in P; tol in nats.");
  m.def(
      "team_executor",
      [](const std::string& kernel, const Array& P, double tol, int max_iter, int team_size, uint64_t seed,
         bool coupling, bool duals, int scaling_iters, int workers) {
        if (team_size < 1 || team_size > 4096) throw std::invalid_argument("team_size must be in 1..4096");
        if (workers < 1) throw std::invalid_argument("workers must be >= 1");
        auto body = [&kernel, team_size, seed, workers](const double* p, Shape s, SolverOptions opt, SolveOutputs out) {
          fastpid::team_executor_cpu(kernel.c_str(), p, s, opt, out, team_size, seed, workers);
        };
        return run(body, P, options(tol, max_iter, scaling_iters), coupling, duals);
      },
      py::arg("kernel"), py::arg("P"), py::arg("tol"), py::arg("max_iter"), py::arg("team_size"), py::arg("seed"),
      py::arg("coupling") = false, py::arg("duals") = false, py::arg("scaling_iters") = 200, py::arg("workers") = 1,
      "Runs a kernel body with the CPU test executor: a team of team_size ranks as fibers, every phase in a "
      "shuffled rank order, over a grid of `workers` simulated blocks walking the batch as the CUDA driver does "
      "(tests of the code the GPU runs).");
  m.def(
      "proxy_cpu",
      [](const Array& P, double tol, bool coupling, bool duals, int threads) {
        return run(on_threads(fastpid::proxy_cpu, threads), P, options(tol, 0), coupling, duals);
      },
      py::arg("P"), py::arg("tol"), py::arg("coupling") = false, py::arg("duals") = false,
      py::arg("threads") = 0, "Closed-form proxy of every distribution in P; tol in nats.");
  m.def(
      "informations_cpu",
      [](const Array& P, int threads) {
        const Shape s = shape_of(P);
        py::array_t<double> out({s.batch, int64_t(4)});
        double* o = out.mutable_data();
        const double* p = P.data();
        {
          py::gil_scoped_release release;
          fastpid::informations_cpu(p, s, o, threads);
        }
        return out;
      },
      py::arg("P"), py::arg("threads") = 0,
      "I(X1;Y), I(X2;Y), I(X1,X2;Y) and H(Y) in nats (batch, 4) of every distribution in P (batch, n1, n2, ny).");
  m.def(
      "subset_entropies_cpu",
      [](const py::array_t<double, py::array::c_style | py::array::forcecast>& P,
         const py::array_t<int, py::array::c_style | py::array::forcecast>& subset_masks, int threads) {
        if (P.ndim() < 3) throw std::invalid_argument("expected an array of shape (batch, n1, ..., nk, ny) with k >= 1");
        const std::vector<int> masks(subset_masks.data(), subset_masks.data() + subset_masks.size());
        std::vector<int> dims;
        for (int a = 1; a < P.ndim(); ++a) dims.push_back(int(P.shape(a)));
        for (int mask : masks)
          if (mask < 0 || mask >= (1 << (dims.size() - 1))) throw std::invalid_argument("a subset names a source P does not have");
        const int64_t batch = P.shape(0);
        py::array_t<double> out({batch, int64_t(masks.size()), int64_t(2)});
        double* o = out.mutable_data();
        const double* p = P.data();
        {
          py::gil_scoped_release release;
          fastpid::subset_entropies_cpu(p, batch, dims, masks, o, threads);
        }
        return out;
      },
      py::arg("P"), py::arg("masks"), py::arg("threads") = 0,
      "H(X_S, Y) and H(X_S) in nats (batch, subsets, 2) of every distribution in P (batch, n1, ..., nk, ny), for each "
      "subset S of the sources given as a bit mask (bit i: source i).");
  m.def(
      "union_cpu",
      [](const py::array_t<double, py::array::c_style | py::array::forcecast>& P,
         const py::array_t<double, py::array::c_style | py::array::forcecast>& tol, int max_iter, int threads,
         const std::string& elimination) {
        const std::vector<int> dims = union_dims(P);
        int how = fastpid::kUnionEliminationAuto;
        if (elimination == "dense") how = fastpid::kUnionEliminationDense;
        else if (elimination == "source") how = fastpid::kUnionEliminationSource;
        else if (elimination != "auto") throw std::invalid_argument("elimination must be 'auto', 'dense' or 'source'");
        if (tol.size() != 1 && tol.size() != P.shape(0))
          throw std::invalid_argument("tol must be one number or one per distribution");
        const int64_t batch = P.shape(0);
        UnionArrays out(batch, fastpid::union_shape(dims.data(), int(dims.size()) - 1, batch).full);
        double *v = out.value.mutable_data(), *b = out.bound.mutable_data(), *d = out.dual.mutable_data();
        uint8_t* c = out.converged.mutable_data();
        int32_t* it = out.iterations.mutable_data();
        const double* p = P.data();
        std::vector<double> tols(size_t(batch), tol.size() ? tol.data()[0] : 0.0);
        if (tol.size() == batch) std::copy(tol.data(), tol.data() + batch, tols.begin());
        bool interrupted = false;
        {
          py::gil_scoped_release release;
          try {
            fastpid::union_cpu(p, batch, dims, tols.data(), max_iter, v, b, c, it, d, threads, how);
          } catch (const fastpid::Interrupted&) {
            interrupted = true;
          }
        }
        if (interrupted) raise_interruption();
        return out.dict();
      },
      py::arg("P"), py::arg("tol"), py::arg("max_iter"), py::arg("threads") = 0, py::arg("elimination") = "auto",
      "The k-source union problem of every distribution in P (batch, n1, ..., nk, ny), normalised: max H_Q(Y | X1..Xk) "
      "in nats of a feasible coupling, its certified bound, converged, the iterations and the dual point (batch, "
      "sum_i ni * ny; -inf where left out); tol in nats, one number or one per distribution. elimination: how the "
      "Newton systems are factorised ('auto': by counted cost; 'dense'; 'source': on the source with the most unknowns).");
  m.def(
      "union_team_executor",
      [](const py::array_t<double, py::array::c_style | py::array::forcecast>& P, double tol, int max_iter, int team_size,
         uint64_t seed, int workers) {
        const std::vector<int> dims = union_dims(P);
        if (team_size < 1 || team_size > 4096) throw std::invalid_argument("team_size must be in 1..4096");
        if (workers < 1) throw std::invalid_argument("workers must be >= 1");
        const int64_t batch = P.shape(0);
        UnionArrays out(batch, fastpid::union_shape(dims.data(), int(dims.size()) - 1, batch).full);
        std::vector<double> tols(size_t(batch), tol);
        fastpid::union_team_executor_cpu(P.data(), batch, dims, tols.data(), max_iter, out.value.mutable_data(),
                                         out.bound.mutable_data(), out.converged.mutable_data(), out.iterations.mutable_data(),
                                         out.dual.mutable_data(), team_size, seed, workers);
        return out.dict();
      },
      py::arg("P"), py::arg("tol"), py::arg("max_iter"), py::arg("team_size"), py::arg("seed") = 0, py::arg("workers") = 1,
      "union_cpu's algorithm with the team algebra run by the CPU test executor: teams of team_size fibers, each phase "
      "in a shuffled rank order, a simulated grid of `workers` blocks walking the batch (tests).");
  m.def(
      "input_totals",
      [](const Array& P) {
        if (P.ndim() < 1) throw std::invalid_argument("input_totals: expected an array of shape (batch, ...)");
        const int64_t batch = P.shape(0), per = batch > 0 ? P.size() / batch : 0;
        py::array_t<double> total(batch);
        py::array_t<bool> nonfinite(batch), negative(batch);
        double* t = total.mutable_data();
        bool *f = nonfinite.mutable_data(), *n = negative.mutable_data();
        const double* p = P.data();
        {
          py::gil_scoped_release release;
          fastpid::input_totals_cpu(p, batch, per, t, f, n);
        }
        return py::make_tuple(total, nonfinite, negative);
      },
      py::arg("P"),
      "(total, nonfinite, negative) of every distribution in P (batch, ...): its sum, and whether it has a NaN or "
      "infinite entry and a negative entry.");
  m.def(
      "elementary",
      [](const std::string& name, const Array& x) {
        if (name != "exp" && name != "log") throw std::invalid_argument("elementary: name must be 'exp' or 'log'");
        py::array_t<double> y(x.size());
        const double* in = x.data();
        double* out = y.mutable_data();
        const int64_t n = x.size();
        if (name == "exp") {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) out[i] = fastpid::simd_exp(in[i]);
        } else {
#pragma omp simd
          for (int64_t i = 0; i < n; ++i) out[i] = fastpid::simd_log(in[i]);
        }
        return y;
      },
      py::arg("name"), py::arg("x"),
      "fastpid's vectorisable exp or log (elementary.hpp) of every entry of x, in a simd loop (tests).");
  m.def(
      "value_grad_cpu",
      [](const Array& grad_value, const Array& P, const Array& dual1, const Array& dual2, int threads) {
        const Shape s = shape_of(P);
        if (grad_value.size() != s.batch || dual1.size() != s.batch * s.n1 * s.ny || dual2.size() != s.batch * s.n2 * s.ny)
          throw std::invalid_argument("value_grad_cpu: inconsistent shapes");
        py::array_t<double> grad({s.batch, int64_t(s.n1), int64_t(s.n2), int64_t(s.ny)});
        double* out = grad.mutable_data();
        const double *g = grad_value.data(), *p = P.data(), *d1 = dual1.data(), *d2 = dual2.data();
        {
          py::gil_scoped_release release;
          fastpid::value_grad_cpu(g, p, d1, d2, s, out, threads);
        }
        return grad;
      },
      py::arg("grad_value"), py::arg("P"), py::arg("dual1"), py::arg("dual2"), py::arg("threads") = 0,
      "Gradient of the solved value with respect to P from the saved dual point.");
  m.def(
      "pid_grad_cpu",
      [](const Array& grad_value, const Array& grad_informations, const Array& P, const Array& dual1,
         const Array& dual2, bool normalize, int threads) {
        const Shape s = shape_of(P);
        if (grad_value.size() != s.batch || grad_informations.size() != 4 * s.batch ||
            dual1.size() != s.batch * s.n1 * s.ny || dual2.size() != s.batch * s.n2 * s.ny)
          throw std::invalid_argument("pid_grad_cpu: inconsistent shapes");
        py::array_t<double> grad({s.batch, int64_t(s.n1), int64_t(s.n2), int64_t(s.ny)});
        double* out = grad.mutable_data();
        const double *g = grad_value.data(), *gi = grad_informations.data(), *p = P.data(), *d1 = dual1.data(),
                     *d2 = dual2.data();
        {
          py::gil_scoped_release release;
          fastpid::pid_grad_cpu(g, gi, p, d1, d2, s, normalize, out, threads);
        }
        return grad;
      },
      py::arg("grad_value"), py::arg("grad_informations"), py::arg("P"), py::arg("dual1"), py::arg("dual2"),
      py::arg("normalize"), py::arg("threads") = 0,
      "Gradient of decompose's value and informations (batch, 4) with respect to P as given (totals divided "
      "out; with normalize, the division inside the graph) from the saved dual point.");
  m.def(
      "value_grad_grid_cpu",
      [](const Array& grad_value, const Array& P, const Array& dual1, const Array& dual2, int blocks, int threads) {
        const Shape s = shape_of(P);
        if (grad_value.size() != s.batch || dual1.size() != s.batch * s.n1 * s.ny || dual2.size() != s.batch * s.n2 * s.ny)
          throw std::invalid_argument("value_grad_grid_cpu: inconsistent shapes");
        if (blocks < 1 || threads < 1) throw std::invalid_argument("blocks and threads must be >= 1");
        py::array_t<double> grad({s.batch, int64_t(s.n1), int64_t(s.n2), int64_t(s.ny)});
        fastpid::value_grad_grid_cpu(grad_value.data(), P.data(), dual1.data(), dual2.data(), s, grad.mutable_data(),
                                     blocks, threads);
        return grad;
      },
      py::arg("grad_value"), py::arg("P"), py::arg("dual1"), py::arg("dual2"), py::arg("blocks"), py::arg("threads"),
      "The CUDA backward kernel's body (grid-stride loop) run for every thread of a simulated grid (tests).");
#ifdef FASTPID_WITH_CUDA
  // CUDA entry points take device pointers (as integers) owned by the caller and the
  // caller's stream handle; they enqueue work and return without synchronising.
  m.def(
      "cuda_plan",
      [](const std::string& kernel, int64_t batch, int n1, int n2, int ny) {
        const fastpid::CudaPlan plan = fastpid::cuda_plan(kernel, Shape{batch, n1, n2, ny});
        return py::make_tuple(plan.blocks, plan.threads, plan.workspace_per_block);
      },
      py::arg("kernel"), py::arg("batch"), py::arg("n1"), py::arg("n2"), py::arg("ny"),
      "(blocks, threads, workspace doubles per block) of a launch of `kernel` on the current device.");
  m.def(
      "cuda_kernel_info",
      [](const std::string& kernel) {
        const fastpid::CudaKernelInfo info = fastpid::cuda_kernel_info(kernel);
        py::dict d;
        d["registers"] = info.registers;
        d["local_bytes"] = info.local_bytes;
        d["shared_bytes"] = info.shared_bytes;
        d["max_threads"] = info.max_threads;
        d["binary_version"] = info.binary_version;
        return d;
      },
      py::arg("kernel"),
      "Registers and local memory per thread, static shared memory and the largest block of a CUDA kernel (proxy, refine, exact, value_grad).");
  m.def(
      "cuda_launch",
      [](const std::string& kernel, uintptr_t P, int64_t batch, int n1, int n2, int ny, double tol, int max_iter,
         int scaling_iters, uintptr_t value, uintptr_t bound, uintptr_t converged, uintptr_t iterations,
         uintptr_t coupling, uintptr_t dual1, uintptr_t dual2, uintptr_t workspace, int blocks, int threads,
         int64_t workspace_per_block, uintptr_t stream) {
        SolveOutputs out;
        out.value = reinterpret_cast<double*>(value);
        out.bound = reinterpret_cast<double*>(bound);
        out.converged = reinterpret_cast<uint8_t*>(converged);
        out.iterations = reinterpret_cast<int32_t*>(iterations);
        out.coupling = reinterpret_cast<double*>(coupling);
        out.dual1 = reinterpret_cast<double*>(dual1);
        out.dual2 = reinterpret_cast<double*>(dual2);
        fastpid::CudaPlan plan;
        plan.blocks = blocks;
        plan.threads = threads;
        plan.workspace_per_block = workspace_per_block;
        fastpid::cuda_launch(kernel, reinterpret_cast<const double*>(P), Shape{batch, n1, n2, ny},
                             options(tol, max_iter, scaling_iters), out, reinterpret_cast<double*>(workspace), plan,
                             reinterpret_cast<void*>(stream));
      },
      py::arg("kernel"), py::arg("P"), py::arg("batch"), py::arg("n1"), py::arg("n2"), py::arg("ny"), py::arg("tol"),
      py::arg("max_iter"), py::arg("scaling_iters"), py::arg("value"), py::arg("bound"), py::arg("converged"),
      py::arg("iterations"), py::arg("coupling"), py::arg("dual1"), py::arg("dual2"), py::arg("workspace"),
      py::arg("blocks"), py::arg("threads"), py::arg("workspace_per_block"), py::arg("stream"),
      "Enqueue `kernel` (proxy, refine or exact) on `stream` (device pointers; coupling and duals may be 0).");
  m.def(
      "cuda_union_plan",
      [](const py::sequence& dims_seq, int64_t batch) {
        const std::vector<int> dims = ints_of(dims_seq);
        if (dims.size() < 3 || int(dims.size()) - 1 > fastpid::kMaxSources)
          throw std::invalid_argument("dims must be (n1, ..., nk, ny) with 2 <= k <= 8");
        const fastpid::CudaPlan plan = fastpid::cuda_union_plan(fastpid::union_shape(dims.data(), int(dims.size()) - 1, batch));
        return py::make_tuple(plan.blocks, plan.threads, plan.workspace_per_block);
      },
      py::arg("dims"), py::arg("batch"),
      "(blocks, threads, workspace doubles per block) of a launch of the k-source kernel on batches of shape dims = "
      "(n1, ..., nk, ny) on the current device.");
  m.def(
      "cuda_union_launch",
      [](uintptr_t P, const py::sequence& dims_seq, int64_t batch, uintptr_t tol, int max_iter, uintptr_t value,
         uintptr_t bound, uintptr_t converged, uintptr_t iterations, uintptr_t dual, uintptr_t workspace, int blocks,
         int threads, int64_t workspace_per_block, uintptr_t stream) {
        const std::vector<int> dims = ints_of(dims_seq);
        if (dims.size() < 3 || int(dims.size()) - 1 > fastpid::kMaxSources)
          throw std::invalid_argument("dims must be (n1, ..., nk, ny) with 2 <= k <= 8");
        fastpid::UnionOutputs out{reinterpret_cast<const double*>(tol), max_iter, reinterpret_cast<double*>(value),
                                  reinterpret_cast<double*>(bound), reinterpret_cast<uint8_t*>(converged),
                                  reinterpret_cast<int32_t*>(iterations), reinterpret_cast<double*>(dual)};
        fastpid::CudaPlan plan;
        plan.blocks = blocks;
        plan.threads = threads;
        plan.workspace_per_block = workspace_per_block;
        fastpid::cuda_union_launch(reinterpret_cast<const double*>(P), fastpid::union_shape(dims.data(), int(dims.size()) - 1, batch),
                                   out, reinterpret_cast<double*>(workspace), plan, reinterpret_cast<void*>(stream));
      },
      py::arg("P"), py::arg("dims"), py::arg("batch"), py::arg("tol"), py::arg("max_iter"), py::arg("value"), py::arg("bound"),
      py::arg("converged"), py::arg("iterations"), py::arg("dual"), py::arg("workspace"), py::arg("blocks"), py::arg("threads"),
      py::arg("workspace_per_block"), py::arg("stream"),
      "Enqueue the k-source kernel on `stream` (device pointers; tol: one per distribution; dual may be 0).");
  m.def(
      "cuda_value_grad",
      [](uintptr_t grad_value, uintptr_t P, uintptr_t dual1, uintptr_t dual2, uintptr_t grad_P, int64_t batch, int n1,
         int n2, int ny, uintptr_t stream) {
        fastpid::cuda_value_grad(reinterpret_cast<const double*>(grad_value), reinterpret_cast<const double*>(P),
                                 reinterpret_cast<const double*>(dual1), reinterpret_cast<const double*>(dual2),
                                 Shape{batch, n1, n2, ny}, reinterpret_cast<double*>(grad_P), reinterpret_cast<void*>(stream));
      },
      py::arg("grad_value"), py::arg("P"), py::arg("dual1"), py::arg("dual2"), py::arg("grad_P"), py::arg("batch"),
      py::arg("n1"), py::arg("n2"), py::arg("ny"), py::arg("stream"),
      "Enqueue the backward of the value (grad_P = -grad_value (alpha + beta) where P > 0) on `stream`.");
#endif
  m.def(
      "workspace_doubles",
      [](const std::string& kernel, int n1, int n2, int ny) {
        const Shape s{1, n1, n2, ny};
        if (kernel == "refine") return fastpid::RefineKernel::workspace_doubles(s);
        if (kernel == "proxy") return fastpid::ProxyKernel::workspace_doubles(s);
        if (kernel == "exact") return fastpid::ExactKernel::workspace_doubles(s);
        throw std::invalid_argument("kernel must be 'proxy', 'refine' or 'exact'");
      },
      py::arg("kernel"), py::arg("n1"), py::arg("n2"), py::arg("ny"),
      "Doubles of workspace one distribution of this shape needs (per thread on the CPU, per block on CUDA).");
  m.def("max_threads", &fastpid::max_threads,
        "The threads a native call takes by default (OpenMP's count; 1 in a process forked after fastpid was loaded).");
  m.def("forked_child", &fastpid::forked_child,
        "Whether this process was forked after fastpid was loaded (its native calls then run on one thread).");
  m.def("build_info", []() {
    py::dict info;
    info["version"] = FASTPID_VERSION;
#if defined(__clang__)
    info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    info["compiler"] = std::string("gcc ") + __VERSION__;
#else
    info["compiler"] = "unknown";
#endif
#ifdef FASTPID_WITH_OPENMP
    info["openmp"] = true;
#else
    info["openmp"] = false;
#endif
    info["max_threads"] = fastpid::max_threads();
#ifdef FASTPID_WITH_CUDA
    info["cuda"] = true;
    info["cuda_architectures"] = FASTPID_CUDA_ARCHS;
#else
    info["cuda"] = false;
    info["cuda_architectures"] = "";
#endif
    return info;
  });
}
