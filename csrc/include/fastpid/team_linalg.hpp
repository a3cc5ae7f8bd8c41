// Team building blocks shared by the kernel bodies: products of a cell matrix R (nA x nB,
// row-major, one entry per cell (i, j)) with per-label factors (n x ny, row-major), and a
// Cholesky factorisation batched over labels.
//
// Every routine is written once for every executor. The loop schedule depends on the team:
// a SerialTeam walks rows with unit-stride inner loops (vectorisable), a parallel team strides
// over output entries so that every rank owns whole outputs. For each output entry the terms
// are added in the same order by both schedules (zero cell entries are skipped in both), so
// the two give identical results.
#pragma once
#include <cmath>

#include "fastpid/team.hpp"

namespace fastpid {

// out(i, y) = sum_j R(i, j) X(j, y)
template <class Team>
FASTPID_HD void cells_times(Team& team, const double* R, const double* X, double* out, int nA, int nB, int ny) {
  if constexpr (Team::kSerial) {
    for (int i = 0; i < nA; ++i) {
      double* o = out + int64_t(i) * ny;
      for (int y = 0; y < ny; ++y) o[y] = 0.0;
      const double* r = R + int64_t(i) * nB;
      for (int j = 0; j < nB; ++j) {
        const double rij = r[j];
        if (rij == 0.0) continue;
        const double* x = X + int64_t(j) * ny;
        for (int y = 0; y < ny; ++y) o[y] += rij * x[y];
      }
    }
  } else {
    for (int64_t e = team.rank(); e < int64_t(nA) * ny; e += team.size()) {
      const int i = int(e / ny), y = int(e % ny);
      const double* r = R + int64_t(i) * nB;
      double s = 0.0;
      for (int j = 0; j < nB; ++j)
        if (r[j] != 0.0) s += r[j] * X[int64_t(j) * ny + y];
      out[e] = s;
    }
  }
}

// out(j, y) = sum_i R(i, j) Y(i, y)
template <class Team>
FASTPID_HD void cells_t_times(Team& team, const double* R, const double* Y, double* out, int nA, int nB, int ny) {
  if constexpr (Team::kSerial) {
    for (int64_t e = 0; e < int64_t(nB) * ny; ++e) out[e] = 0.0;
    for (int i = 0; i < nA; ++i) {
      const double* r = R + int64_t(i) * nB;
      const double* yi = Y + int64_t(i) * ny;
      for (int j = 0; j < nB; ++j) {
        const double rij = r[j];
        if (rij == 0.0) continue;
        double* o = out + int64_t(j) * ny;
        for (int y = 0; y < ny; ++y) o[y] += rij * yi[y];
      }
    }
  } else {
    for (int64_t e = team.rank(); e < int64_t(nB) * ny; e += team.size()) {
      const int j = int(e / ny), y = int(e % ny);
      double s = 0.0;
      for (int i = 0; i < nA; ++i) {
        const double rij = R[int64_t(i) * nB + j];
        if (rij != 0.0) s += rij * Y[int64_t(i) * ny + y];
      }
      out[e] = s;
    }
  }
}

// Packed lower-triangular index of (j, k), k <= j.
FASTPID_HD inline int64_t tri(int j, int k) { return int64_t(j) * (j + 1) / 2 + k; }

// The inverse of tri: (j, k) of the packed index q.
FASTPID_HD inline void tri_unindex(int64_t q, int& j, int& k) {
  j = int((::sqrt(8.0 * double(q) + 1.0) - 1.0) / 2.0);
  while (tri(j, 0) > q) --j;  // the square root's rounding, either way
  while (tri(j + 1, 0) <= q) ++j;
  k = int(q - tri(j, 0));
}

// In-place Cholesky factorisation of ny symmetric positive definite n x n matrices stored as
// K[tri(j, k) * ny + y] (packed lower triangle, labels fastest). A pivot that is not safely
// positive (a direction the system does not determine) is replaced by a huge value, which
// sets the solution's component along it to zero. Labels are independent: the serial schedule
// vectorises over them, a parallel team gives each rank its own labels.
template <class Team>
FASTPID_HD void cholesky_by_label(Team& team, double* K, int n, int ny) {
  const int y0 = Team::kSerial ? 0 : team.rank(), step = Team::kSerial ? 1 : team.size();
  for (int j = 0; j < n; ++j) {
    for (int k = 0; k <= j; ++k) {
      double* kjk = K + tri(j, k) * ny;
      for (int m = 0; m < k; ++m) {
        const double* a = K + tri(j, m) * ny;
        const double* b = K + tri(k, m) * ny;
        for (int y = y0; y < ny; y += step) kjk[y] -= a[y] * b[y];
      }
      if (k < j) {
        const double* kkk = K + tri(k, k) * ny;
        for (int y = y0; y < ny; y += step) kjk[y] /= kkk[y];
      } else {
        for (int y = y0; y < ny; y += step) {
          const double d = kjk[y];
          kjk[y] = d > 1e-300 ? ::sqrt(d) : 1e150;
        }
      }
    }
  }
}

// Solves L L^T x = v in place for every label, L from cholesky_by_label; v is (n, ny).
template <class Team>
FASTPID_HD void cholesky_solve_by_label(Team& team, const double* K, int n, int ny, double* v) {
  const int y0 = Team::kSerial ? 0 : team.rank(), step = Team::kSerial ? 1 : team.size();
  for (int j = 0; j < n; ++j) {
    double* vj = v + int64_t(j) * ny;
    for (int k = 0; k < j; ++k) {
      const double* l = K + tri(j, k) * ny;
      const double* vk = v + int64_t(k) * ny;
      for (int y = y0; y < ny; y += step) vj[y] -= l[y] * vk[y];
    }
    const double* d = K + tri(j, j) * ny;
    for (int y = y0; y < ny; y += step) vj[y] /= d[y];
  }
  for (int j = n - 1; j >= 0; --j) {
    double* vj = v + int64_t(j) * ny;
    const double* d = K + tri(j, j) * ny;
    for (int y = y0; y < ny; y += step) vj[y] /= d[y];
    for (int k = 0; k < j; ++k) {
      const double* l = K + tri(j, k) * ny;
      double* vk = v + int64_t(k) * ny;
      for (int y = y0; y < ny; y += step) vk[y] -= l[y] * vj[y];
    }
  }
}

// K^-1 for every label from the factors of cholesky_by_label: Linv (packed, as the factor)
// receives L^-1, and Kinv (full, Kinv[(j * n + k) * ny + y]) receives L^-T L^-1.
template <class Team>
FASTPID_HD void inverse_by_label(Team& team, const double* K, int n, int ny, double* Linv, double* Kinv) {
  const int y0 = Team::kSerial ? 0 : team.rank(), step = Team::kSerial ? 1 : team.size();
  for (int j = 0; j < n; ++j) {
    const double* d = K + tri(j, j) * ny;
    double* ljj = Linv + tri(j, j) * ny;
    for (int y = y0; y < ny; y += step) ljj[y] = 1.0 / d[y];
    for (int k = 0; k < j; ++k) {
      double* ljk = Linv + tri(j, k) * ny;
      for (int y = y0; y < ny; y += step) ljk[y] = 0.0;
      for (int m = k; m < j; ++m) {
        const double* l = K + tri(j, m) * ny;
        const double* v = Linv + tri(m, k) * ny;
        for (int y = y0; y < ny; y += step) ljk[y] -= l[y] * v[y];
      }
      for (int y = y0; y < ny; y += step) ljk[y] *= ljj[y];
    }
  }
  for (int j = 0; j < n; ++j)
    for (int k = 0; k <= j; ++k) {
      double* out = Kinv + (int64_t(j) * n + k) * ny;
      for (int y = y0; y < ny; y += step) out[y] = 0.0;
      for (int m = j; m < n; ++m) {
        const double* a = Linv + tri(m, j) * ny;
        const double* b = Linv + tri(m, k) * ny;
        for (int y = y0; y < ny; y += step) out[y] += a[y] * b[y];
      }
      double* mirror = Kinv + (int64_t(k) * n + j) * ny;
      for (int y = y0; y < ny; y += step) mirror[y] = out[y];
    }
}

// In-place Cholesky factorisation of the symmetric positive definite n x n matrix A (row-major,
// lower triangle used). Pivots that are not safely positive are replaced by a huge value, as
// in cholesky_by_label: d <= 1e-300 by default, or with `scale`, d <= rel * scale[k] (scale: a
// copy of the diagonal taken before factorisation), replaced by `huge`. The serial schedule is
// left-looking (contiguous dot products); a parallel team is right-looking, each rank owning
// whole rows of the trailing update.
template <class Team>
FASTPID_HD void cholesky_team(Team& team, double* A, int n, const double* scale = nullptr, double rel = 0.0,
                              double huge = 1e150) {
  auto pivot = [&](double d, int k) {
    const double floor = scale ? rel * scale[k] : 1e-300;
    return d > floor ? ::sqrt(d) : huge;
  };
  if constexpr (Team::kSerial) {
    for (int j = 0; j < n; ++j) {
      double* rj = A + int64_t(j) * n;
      for (int k = 0; k <= j; ++k) {
        const double* rk = A + int64_t(k) * n;
        double v = rj[k];
        for (int m = 0; m < k; ++m) v -= rj[m] * rk[m];
        if (k < j) rj[k] = v / rk[k];
        else rj[j] = pivot(v, j);
      }
    }
  } else {
    for (int k = 0; k < n; ++k) {
      double* rk = A + int64_t(k) * n;
      if (team.rank() == 0) rk[k] = pivot(rk[k], k);
      team.sync();
      const double pivot = rk[k];
      for (int i = k + 1 + team.rank(); i < n; i += team.size()) A[int64_t(i) * n + k] /= pivot;
      team.sync();
      for (int i = k + 1 + team.rank(); i < n; i += team.size()) {
        double* ri = A + int64_t(i) * n;
        const double lik = ri[k];
        for (int j = k + 1; j <= i; ++j) ri[j] -= lik * A[int64_t(j) * n + k];
      }
      team.sync();
    }
  }
}

// Solves L L^T x = x in place with L from cholesky_team (rank 0 substitutes; the others wait).
template <class Team>
FASTPID_HD void cholesky_solve_team(Team& team, const double* A, int n, double* x) {
  if (team.rank() == 0) {
    for (int i = 0; i < n; ++i) {
      const double* ri = A + int64_t(i) * n;
      double v = x[i];
      for (int k = 0; k < i; ++k) v -= ri[k] * x[k];
      x[i] = v / ri[i];
    }
    for (int i = n - 1; i >= 0; --i) {
      const double* ri = A + int64_t(i) * n;
      const double v = x[i] / ri[i];
      x[i] = v;
      for (int k = 0; k < i; ++k) x[k] -= ri[k] * v;
    }
  }
  team.sync();
}

}  // namespace fastpid
