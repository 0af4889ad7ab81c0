// Where a failed attention output is wrong, in the terms of the kernels' tiles: for the
// GPU harness (attention_check.cu) and the CPU emulation (emu/check_attention.cc), so
// that a kernel's first failing run on a GPU names the likely cause at once. A layout
// misread (a descriptor's strides swapped, a fragment's rows or columns placed in the
// wrong core matrix) leaves a regular pattern: whole blocks of 8 rows or columns wrong,
// and often the right values in the wrong place, which a permutation by XOR of the row
// or column index finds.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace perceiver {

// A row's log-sum-exp against the reference's w, in units of the tolerance (<= 1
// passes): written, within 1e-5 (1 + |w|), and exactly +inf where w is (every key
// masked); not written, still NaN (untouched).
inline double lse_error(bool written, double w, double got) {
  if (!written) return std::isnan(got) ? 0.0 : INFINITY;
  if (std::isinf(w)) return got == w ? 0.0 : INFINITY;
  return std::isnan(got) ? INFINITY : std::fabs(got - w) / (1e-5 * (1 + std::fabs(w)));
}

// "a-b,c,..." for the set members of flags.
inline std::string index_ranges(const std::vector<bool>& flags) {
  std::string s;
  for (size_t i = 0; i < flags.size();) {
    if (!flags[i]) {
      i++;
      continue;
    }
    size_t j = i;
    while (j + 1 < flags.size() && flags[j + 1]) j++;
    if (!s.empty()) s += ",";
    s += std::to_string(i);
    if (j > i) s += "-" + std::to_string(j);
    i = j + 1;
  }
  return s.empty() ? "none" : s;
}

// got and ref: [slices][rows.size()][dv] (slices: batch x heads), rows: the query row
// each middle index stands for. An element is bad where |got - ref| > tol (1 + |ref|)
// or got is NaN. Returns one line: how many are bad, which rows (mod 64, a warpgroup's
// rows) and which output columns hold them, and the row or column XOR permutations
// under which most bad elements take a reference value that is right.
inline std::string attention_error_pattern(const std::vector<double>& got, const std::vector<double>& ref,
                                           int64_t slices, const std::vector<int64_t>& rows, int64_t dv,
                                           double tol) {
  const int64_t nr = (int64_t)rows.size();
  auto bad_at = [&](double g, double r) { return std::isnan(g) || std::fabs(g - r) > tol * (1 + std::fabs(r)); };
  std::vector<bool> bad_rows(64, false), bad_cols((size_t)dv, false);
  // Where each checked row is among rows (for row permutations), -1 if not checked.
  int64_t max_row = 0;
  for (int64_t r : rows) max_row = std::max(max_row, r);
  std::vector<int64_t> index_of((size_t)max_row + 1, -1);
  for (int64_t k = 0; k < nr; k++) index_of[(size_t)rows[(size_t)k]] = k;
  const int col_xors[] = {1, 2, 4, 8, 16, 32, 64, 128};
  const int row_xors[] = {8, 16, 32, 64};
  int64_t col_hits[8] = {}, row_hits[4] = {}, bad = 0;
  for (int64_t s = 0; s < slices; s++)
    for (int64_t k = 0; k < nr; k++)
      for (int64_t d = 0; d < dv; d++) {
        const size_t at = (size_t)((s * nr + k) * dv + d);
        if (!bad_at(got[at], ref[at])) continue;
        bad++;
        bad_rows[(size_t)(rows[(size_t)k] % 64)] = true;
        bad_cols[(size_t)d] = true;
        for (int x = 0; x < 8; x++) {
          const int64_t d2 = d ^ col_xors[x];
          if (d2 < dv && !bad_at(got[at], ref[(size_t)((s * nr + k) * dv + d2)])) col_hits[x]++;
        }
        for (int x = 0; x < 4; x++) {
          const int64_t r2 = rows[(size_t)k] ^ row_xors[x];
          const int64_t k2 = r2 <= max_row ? index_of[(size_t)r2] : -1;
          if (k2 >= 0 && !bad_at(got[at], ref[(size_t)((s * nr + k2) * dv + d)])) row_hits[x]++;
        }
      }
  char head[160];
  std::snprintf(head, sizeof head, "bad %lld of %lld (%.1f%%)", (long long)bad, (long long)(slices * nr * dv),
                100.0 * (double)bad / (double)std::max<int64_t>(1, slices * nr * dv));
  std::string s = head;
  if (!bad) return s;
  s += "; rows mod 64: " + index_ranges(bad_rows) + "; columns: " + index_ranges(bad_cols);
  // A permutation is reported where it explains at least half of the bad elements.
  std::string perm;
  for (int x = 0; x < 8; x++)
    if (2 * col_hits[x] >= bad)
      perm += " column^" + std::to_string(col_xors[x]) + " " + std::to_string(100 * col_hits[x] / bad) + "%";
  for (int x = 0; x < 4; x++)
    if (2 * row_hits[x] >= bad)
      perm += " row^" + std::to_string(row_xors[x]) + " " + std::to_string(100 * row_hits[x] / bad) + "%";
  s += "; right values in the wrong place:" + (perm.empty() ? std::string(" none found") : perm);
  return s;
}

}  // namespace perceiver
