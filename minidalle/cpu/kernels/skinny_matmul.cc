// y[M, N] = x[M, K] · W for the few rows a decoder step has (M = 2 per image with
// super-conditioning), as an XLA FFI custom call for the CPU.
//
// Why: XLA's CPU dot reaches the memory bandwidth only for a single row; with 2..32 rows it runs
// at a third of it (bench/bench_pipeline.py measures both). A decode step reads every weight once,
// so the whole image is bounded by how fast the weights stream in.
//
// How: the weights are packed once, at load time, into panels of kPanel output columns,
// [P, K, kPanel] row-major (minidalle/cpu/matmul.py), so each panel is one contiguous stream.
// While k runs, 12 AVX2 accumulators hold the outputs of one pass: 4 rows × 24 columns (half a
// panel) for every four rows, then 2 rows × 48 for a remaining pair (one image's two rows), then
// a single row. Built for AVX-512 (cpu_kernels picks the flags), 24 of its 32 registers hold
// 8 rows × 48 columns, so a 2x2 grid's step streams each weight once, like one image's does
// (RowsBlock512). K is walked in blocks so a panel block stays in L2 while the passes reuse it;
// they prefetch the next block as they go, so memory keeps streaming during the passes that read
// from L2. Panels are split between the threads of a crew that stays awake between calls
// (crew.h). One call may take several matrices of the same x (a layer's q, k and v): their
// panels are shared out as one list. Weights are fp32, bf16 (bf16 → fp32 is a shift or a mask,
// see Load16) or int8 (weight-only int8, minidalle/quantize.py: each 8 bytes widened to 8 fp32
// by two instructions; the per-column scales are applied after the call, in JAX). Accumulators
// are fp32 whatever the weights: int8 values are exact in fp32, so x·Q is the fp32 product.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "crew.h"
#include "stealable_ranges.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kPanel = 48;       // output columns per panel: 6 AVX2 registers
// k values per block: 512 × 48 × 4 B = 96 KiB of fp32, 48 KiB of bf16, 24 KiB of int8. In k, not
// bytes: the block is what the passes reuse from cache, and a smaller one only costs the y loads
// and stores between blocks (48 floats a row per 512 k). The prefetch distances below are bytes.
constexpr int64_t kBlockK = 512;

// Columns [0, 16) from p of one panel row, as two fp32 vectors.
inline void Load16(const float* p, __m256& low, __m256& high) {
  low = _mm256_loadu_ps(p);
  high = _mm256_loadu_ps(p + 8);
}
// bf16 panels are packed interleaved (matmul.pack): 32-bit word i holds column i in its low
// half and column 8 + i in its high half. bf16 is the top half of an fp32, so one load gives
// both vectors with a shift and a mask, and no shuffles.
inline void Load16(const uint16_t* p, __m256& low, __m256& high) {
  __m256i words = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  low = _mm256_castsi256_ps(_mm256_slli_epi32(words, 16));
  high = _mm256_castsi256_ps(_mm256_and_si256(words, _mm256_set1_epi32(0xFFFF0000u)));
}

// int8 panels are packed in column order: 8 bytes sign-extended to 8 int32 (the load is folded
// into vpmovsxbd) and converted to fp32, exactly.
inline __m256 Load8(const int8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline void Load16(const int8_t* p, __m256& low, __m256& high) {
  low = Load8(p);
  high = Load8(p + 8);
}

// Columns [24·kHalf, 24·kHalf + 24) of one panel row as three fp32 vectors.
template <int kHalf>
inline void Load24(const float* p, __m256& v0, __m256& v1, __m256& v2) {
  v0 = _mm256_loadu_ps(p + 24 * kHalf);
  v1 = _mm256_loadu_ps(p + 24 * kHalf + 8);
  v2 = _mm256_loadu_ps(p + 24 * kHalf + 16);
}
template <int kHalf>
inline void Load24(const int8_t* p, __m256& v0, __m256& v1, __m256& v2) {
  v0 = Load8(p + 24 * kHalf);
  v1 = Load8(p + 24 * kHalf + 8);
  v2 = Load8(p + 24 * kHalf + 16);
}
// The same for interleaved bf16: the left half is group 0 and group 1's low halves, the right
// half group 1's high halves and group 2.
template <int kHalf>
inline void Load24(const uint16_t* p, __m256& v0, __m256& v1, __m256& v2) {
  __m256 unused;
  if (kHalf == 0) {
    Load16(p, v0, v1);
    Load16(p + 16, v2, unused);
  } else {
    Load16(p + 16, unused, v0);
    Load16(p + 32, v1, v2);
  }
}

constexpr int64_t kLine = 64;
// A single row pair reads each block once, straight from memory: prefetching this far ahead of
// it streamed more than the hardware prefetcher alone, and 4 KiB more than 2 KiB (4-8 KiB
// measured alike; bench/README.md, "Tuning notes of the CPU kernels").
constexpr int64_t kStreamAheadBytes = 4096;
// The AVX-512 pass's stream, on weights on huge pages (huge_pages.py): 2 KiB ahead into L1
// streamed more than 4 KiB into L2, the better way on 4 KiB pages (bench/README.md).
constexpr int64_t kStreamAheadBytes512 = 2048;

// The lines of the panel row `ahead_bytes` past w, into L1: how the only pass over a block keeps
// the stream ahead of it coming. An int8 row (48 B) may end in the next line; the next row's
// prefetch covers that line, as rows start every 48 B and lines are 64.
template <typename W>
inline void PrefetchRowAhead(const W* w, int64_t ahead_bytes) {
  const char* ahead = reinterpret_cast<const char*>(w) + ahead_bytes;
  for (int64_t offset = 0; offset < kPanel * int64_t(sizeof(W)); offset += kLine) {
    _mm_prefetch(ahead + offset, _MM_HINT_T0);
  }
}

// Cache lines [first, end) of the next block, to be prefetched into L2 evenly over one pass.
struct Prefetch {
  const char* base = nullptr;
  int64_t first = 0;
  int64_t end = 0;
};

// Issues a pass's share of the next block's lines evenly over its k steps. Counting credit
// instead of dividing per step matters: one integer division per k cost the four-row pass half
// its FMA rate.
class PrefetchPacer {
 public:
  PrefetchPacer(Prefetch prefetch, int64_t step_count)
      : next_(prefetch.base + prefetch.first * kLine),
        line_count_(prefetch.end - prefetch.first),
        step_count_(step_count) {}

  void Step() {
    for (credit_ += line_count_; credit_ >= step_count_; credit_ -= step_count_) {
      _mm_prefetch(next_, _MM_HINT_T0);
      next_ += kLine;
    }
  }

 private:
  const char* next_;
  int64_t line_count_;
  int64_t step_count_;
  int64_t credit_ = 0;
};

// Rows [row, row + kRows) of one panel over k in [k0, k1); accumulates into y.
template <typename W, int kRows>
void PanelBlock(const float* x, int64_t k_count, const W* panel, float* y, int64_t y_stride,
                int64_t row, int64_t k0, int64_t k1, bool is_first_block, Prefetch prefetch,
                bool is_streaming = false) {
  __m256 acc[kRows][6];
  for (int r = 0; r < kRows; ++r) {
    for (int j = 0; j < 6; ++j) {
      acc[r][j] = is_first_block ? _mm256_setzero_ps()
                                 : _mm256_loadu_ps(y + (row + r) * y_stride + 8 * j);
    }
  }
  const float* x_rows[kRows];
  for (int r = 0; r < kRows; ++r) x_rows[r] = x + (row + r) * k_count;
  PrefetchPacer pacer(prefetch, k1 - k0);
  for (int64_t k = k0; k < k1; ++k) {
    const W* w = panel + k * kPanel;
    if (is_streaming) PrefetchRowAhead(w, kStreamAheadBytes);
    pacer.Step();
    __m256 b[kRows];
    for (int r = 0; r < kRows; ++r) b[r] = _mm256_broadcast_ss(x_rows[r] + k);
    for (int c = 0; c < 3; ++c) {
      __m256 low, high;
      Load16(w + 16 * c, low, high);
      for (int r = 0; r < kRows; ++r) {
        acc[r][2 * c] = _mm256_fmadd_ps(b[r], low, acc[r][2 * c]);
        acc[r][2 * c + 1] = _mm256_fmadd_ps(b[r], high, acc[r][2 * c + 1]);
      }
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int j = 0; j < 6; ++j) _mm256_storeu_ps(y + (row + r) * y_stride + 8 * j, acc[r][j]);
  }
}

// Rows [row, row + 4) of one half panel (24 columns) over k in [k0, k1); accumulates into y.
// With four rows, each weight vector loaded feeds four FMAs instead of two: the grid's passes
// over a block read half as much from L2.
template <typename W, int kHalf>
void QuadBlock(const float* x, int64_t k_count, const W* panel, float* y, int64_t y_stride,
               int64_t row, int64_t k0, int64_t k1, bool is_first_block, Prefetch prefetch) {
  __m256 acc[4][3];
  for (int r = 0; r < 4; ++r) {
    for (int j = 0; j < 3; ++j) {
      acc[r][j] = is_first_block
                      ? _mm256_setzero_ps()
                      : _mm256_loadu_ps(y + (row + r) * y_stride + 24 * kHalf + 8 * j);
    }
  }
  const float* x_rows[4];
  for (int r = 0; r < 4; ++r) x_rows[r] = x + (row + r) * k_count;
  PrefetchPacer pacer(prefetch, k1 - k0);
  for (int64_t k = k0; k < k1; ++k) {
    pacer.Step();
    __m256 w0, w1, w2;
    Load24<kHalf>(panel + k * kPanel, w0, w1, w2);
    for (int r = 0; r < 4; ++r) {
      const __m256 b = _mm256_broadcast_ss(x_rows[r] + k);
      acc[r][0] = _mm256_fmadd_ps(b, w0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(b, w1, acc[r][1]);
      acc[r][2] = _mm256_fmadd_ps(b, w2, acc[r][2]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int j = 0; j < 3; ++j) {
      _mm256_storeu_ps(y + (row + r) * y_stride + 24 * kHalf + 8 * j, acc[r][j]);
    }
  }
}

constexpr int64_t kMaxRows512 = 8;  // 8 rows × 3 vectors: 24 accumulators of 32 registers

#if defined(__AVX512F__) && defined(__AVX512DQ__)
constexpr bool kHasAvx512 = true;

// One panel row as three 16-lane vectors. fp32: columns [16j, 16j + 16) of the panel, in order.
inline void Load48(const float* p, __m512& v0, __m512& v1, __m512& v2) {
  v0 = _mm512_loadu_ps(p);
  v1 = _mm512_loadu_ps(p + 16);
  v2 = _mm512_loadu_ps(p + 32);
}
// bf16, in the interleaved packing Load16 reads: v0 holds columns 0-7 then 16-23, v1 columns
// 8-15 then 24-31, and v2 columns 32 + i in lane 2i and 40 + i in lane 2i + 1. Outputs go
// through the same map (LoadY/StoreY), so every column still adds its products in k order: the
// results are the AVX2 build's, bit for bit, and the packing is the same for both.
inline void Load48(const uint16_t* p, __m512& v0, __m512& v1, __m512& v2) {
  const __m512i words = _mm512_loadu_si512(p);
  v0 = _mm512_castsi512_ps(_mm512_slli_epi32(words, 16));
  v1 = _mm512_castsi512_ps(_mm512_and_si512(words, _mm512_set1_epi32(0xFFFF0000u)));
  const __m512i last = _mm512_cvtepu16_epi32(_mm256_loadu_si256(
      reinterpret_cast<const __m256i*>(p + 32)));
  v2 = _mm512_castsi512_ps(_mm512_slli_epi32(last, 16));
}

// int8, in column order like fp32 (so LoadY/StoreY's plain order): 16 bytes per vector.
inline __m512 Load16x(const int8_t* p) {
  return _mm512_cvtepi32_ps(
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline void Load48(const int8_t* p, __m512& v0, __m512& v1, __m512& v2) {
  v0 = Load16x(p);
  v1 = Load16x(p + 16);
  v2 = Load16x(p + 32);
}

// Lane l of v2 (bf16) holds column 32 + LaneColumns()[l]; permuting by ColumnLanes() undoes it.
inline __m512i LaneColumns() {
  return _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
}
inline __m512i ColumnLanes() {
  return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
}

// Accumulator j of one row, read from / written to that row's 48 outputs in Load48's lane order.
template <typename W>
inline __m512 LoadY(const float* y, int j) {
  return _mm512_loadu_ps(y + 16 * j);
}
template <>
inline __m512 LoadY<uint16_t>(const float* y, int j) {
  if (j == 2) return _mm512_permutexvar_ps(LaneColumns(), _mm512_loadu_ps(y + 32));
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(y + 8 * j)),
                            _mm256_loadu_ps(y + 16 + 8 * j), 1);
}
template <typename W>
inline void StoreY(float* y, int j, __m512 v) {
  _mm512_storeu_ps(y + 16 * j, v);
}
template <>
inline void StoreY<uint16_t>(float* y, int j, __m512 v) {
  if (j == 2) {
    _mm512_storeu_ps(y + 32, _mm512_permutexvar_ps(ColumnLanes(), v));
    return;
  }
  _mm256_storeu_ps(y + 8 * j, _mm512_castps512_ps256(v));
  _mm256_storeu_ps(y + 16 + 8 * j, _mm512_extractf32x8_ps(v, 1));
}

// Rows [row, row + kRows) of one whole panel over k in [k0, k1); accumulates into y.
template <typename W, int kRows>
void RowsBlock512(const float* x, int64_t k_count, const W* panel, float* y, int64_t y_stride,
                  int64_t row, int64_t k0, int64_t k1, bool is_first_block, Prefetch prefetch,
                  bool is_streaming) {
  __m512 acc[kRows][3];
  for (int r = 0; r < kRows; ++r) {
    for (int j = 0; j < 3; ++j) {
      acc[r][j] = is_first_block ? _mm512_setzero_ps() : LoadY<W>(y + (row + r) * y_stride, j);
    }
  }
  const float* x_rows[kRows];
  for (int r = 0; r < kRows; ++r) x_rows[r] = x + (row + r) * k_count;
  PrefetchPacer pacer(prefetch, k1 - k0);
  for (int64_t k = k0; k < k1; ++k) {
    const W* w = panel + k * kPanel;
    if (is_streaming) PrefetchRowAhead(w, kStreamAheadBytes512);
    pacer.Step();
    __m512 w0, w1, w2;
    Load48(w, w0, w1, w2);
    for (int r = 0; r < kRows; ++r) {
      const __m512 b = _mm512_set1_ps(x_rows[r][k]);
      acc[r][0] = _mm512_fmadd_ps(b, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(b, w1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(b, w2, acc[r][2]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int j = 0; j < 3; ++j) StoreY<W>(y + (row + r) * y_stride, j, acc[r][j]);
  }
}

// One pass of `rows` (1..8) rows: the row count picks the instance, so the accumulators stay in
// registers.
template <typename W, typename... Args>
void RowsPass512(int64_t rows, Args... args) {
  switch (rows) {
    case 1: return RowsBlock512<W, 1>(args...);
    case 2: return RowsBlock512<W, 2>(args...);
    case 3: return RowsBlock512<W, 3>(args...);
    case 4: return RowsBlock512<W, 4>(args...);
    case 5: return RowsBlock512<W, 5>(args...);
    case 6: return RowsBlock512<W, 6>(args...);
    case 7: return RowsBlock512<W, 7>(args...);
    default: return RowsBlock512<W, 8>(args...);
  }
}
#else
constexpr bool kHasAvx512 = false;
template <typename W, typename... Args>
void RowsPass512(int64_t, Args...) {}
#endif

// Panel p of y [M, N]. streams_on: the caller goes on with panel p + 1, so the last block
// prefetches into it. A last panel that N cuts short (N is rarely a multiple of 48) is computed
// into scratch and its valid columns copied: y has exactly N columns, so XLA needs no slice (a
// copy) after the call.
template <typename W>
void Panel(const float* x, int64_t m_count, int64_t k_count, const W* packed, float* y,
           int64_t n_count, int64_t p, bool streams_on) {
  // passes over each block: with AVX-512 one per eight rows; with AVX2 two half-panel passes per
  // four rows, then a pair, then a single row
  const int64_t quad_count = m_count / 4;
  const int64_t pair_count = (m_count % 4) / 2;
  const int64_t pass_count = kHasAvx512 ? (m_count + kMaxRows512 - 1) / kMaxRows512
                                        : 2 * quad_count + pair_count;
  const W* panel = packed + p * k_count * kPanel;
  const int64_t column_count = std::min(kPanel, n_count - p * kPanel);
  const bool is_cut = column_count < kPanel;
  std::vector<float> tail(is_cut ? m_count * kPanel : 0);
  float* y_panel = is_cut ? tail.data() : y + p * kPanel;
  const int64_t y_stride = is_cut ? kPanel : n_count;
  for (int64_t k0 = 0; k0 < k_count; k0 += kBlockK) {
    int64_t k1 = std::min(k_count, k0 + kBlockK);
    // The next block follows this one in memory (panels are contiguous); a single pass
    // streams it with prefetches ahead of itself, several passes share the next block's lines.
    bool has_next = k1 < k_count || streams_on;
    int64_t next_k = k1 < k_count ? std::min(k_count - k1, kBlockK) : std::min(k_count, kBlockK);
    int64_t next_lines = has_next && pass_count > 1 ? next_k * kPanel * sizeof(W) / kLine : 0;
    Prefetch prefetch{reinterpret_cast<const char*>(panel + k1 * kPanel), 0, 0};
    int64_t pass = 0;
    auto share_of_next = [&]() {
      prefetch.first = next_lines * pass / pass_count;
      prefetch.end = next_lines * (pass + 1) / pass_count;
      ++pass;
      return prefetch;
    };
    if (kHasAvx512) {
      for (int64_t row = 0; row < m_count; row += kMaxRows512) {
        RowsPass512<W>(std::min(kMaxRows512, m_count - row), x, k_count, panel, y_panel,
                       y_stride, row, k0, k1, k0 == 0, share_of_next(), pass_count == 1);
      }
      continue;
    }
    int64_t row = 0;
    for (; row + 4 <= m_count; row += 4) {
      QuadBlock<W, 0>(x, k_count, panel, y_panel, y_stride, row, k0, k1, k0 == 0,
                      share_of_next());
      QuadBlock<W, 1>(x, k_count, panel, y_panel, y_stride, row, k0, k1, k0 == 0,
                      share_of_next());
    }
    if (row + 2 <= m_count) {
      PanelBlock<W, 2>(x, k_count, panel, y_panel, y_stride, row, k0, k1, k0 == 0,
                       share_of_next(), pass_count == 1);
      row += 2;
    }
    if (row < m_count) {
      PanelBlock<W, 1>(x, k_count, panel, y_panel, y_stride, row, k0, k1, k0 == 0, Prefetch{});
    }
  }
  for (int64_t r = 0; is_cut && r < m_count; ++r) {
    std::copy_n(tail.data() + r * kPanel, column_count, y + r * n_count + p * kPanel);
  }
}

// One weight matrix of a call: its packed panels and its output y [M, N].
template <typename W>
struct Matrix {
  const W* packed;
  int64_t panel_count;
  float* y;
  int64_t n_count;
};

// The panels of all matrices, in order, are one list that the crew shares: several matrices of
// the same x (a layer's q, k and v) cost one hand-off and one wait, not one each. Each thread
// streams its own contiguous share and then helps with what is left of the others'
// (stealable_ranges.h).
template <typename W>
void RunParallel(int64_t thread_count, const float* x, int64_t m_count, int64_t k_count,
                 std::vector<Matrix<W>> matrices) {
  int64_t total_panels = 0;
  for (const Matrix<W>& matrix : matrices) total_panels += matrix.panel_count;
  minidalle::Crew& crew = minidalle::Crew::Get(thread_count);
  auto ranges = std::make_shared<minidalle::StealableRanges>(
      total_panels, std::min(total_panels, crew.thread_count()));
  // Panel `panel` of the list; the owner of a range streams on into the panel after it.
  auto run_panel = [=](int64_t panel, bool streams_on) {
    for (const Matrix<W>& matrix : matrices) {
      if (panel < matrix.panel_count) {
        Panel(x, m_count, k_count, matrix.packed, matrix.y, matrix.n_count, panel,
              streams_on && panel + 1 < matrix.panel_count);
        return;
      }
      panel -= matrix.panel_count;
    }
  };
  crew.Run(ranges->range_count(), [=](int64_t own) {
    for (int64_t panel; (panel = ranges->TakeFront(own)) >= 0;) run_panel(panel, true);
    for (int64_t step = 1; step < ranges->range_count(); ++step) {
      const int64_t other = (own + step) % ranges->range_count();
      for (int64_t panel; (panel = ranges->TakeBack(other)) >= 0;) run_panel(panel, false);
    }
  });
}

// The packed weights and outputs of one call as typed matrices, or an error naming what is off.
template <typename W>
ffi::ErrorOr<std::vector<Matrix<W>>> MatricesOf(ffi::DataType dtype, int64_t m_count,
                                                int64_t k_count, ffi::RemainingArgs packed,
                                                ffi::RemainingRets outputs) {
  std::vector<Matrix<W>> matrices;
  for (size_t i = 0; i < packed.size(); ++i) {
    auto weights = packed.get<ffi::AnyBuffer>(i);
    auto y = outputs.get<ffi::Buffer<ffi::F32>>(i);
    if (!weights.has_value() || !y.has_value()) {
      return ffi::Unexpected(ffi::Error::InvalidArgument("skinny_matmul: bad operand"));
    }
    auto w_dims = weights->dimensions();
    auto y_dims = (*y)->dimensions();
    if (w_dims.size() != 3 || w_dims[1] != k_count || w_dims[2] != kPanel ||
        weights->element_type() != dtype) {
      return ffi::Unexpected(ffi::Error::InvalidArgument(
          "skinny_matmul: want packed [P,K,48], all of one dtype"));
    }
    const int64_t panel_count = w_dims[0];
    if (y_dims.size() != 2 || y_dims[0] != m_count || y_dims[1] > panel_count * kPanel ||
        y_dims[1] <= (panel_count - 1) * kPanel) {
      return ffi::Unexpected(ffi::Error::InvalidArgument(
          "skinny_matmul: want each y [M, N] with N in its last panel"));
    }
    matrices.push_back({static_cast<const W*>(weights->untyped_data()), panel_count,
                        (*y)->typed_data(), y_dims[1]});
  }
  return matrices;
}

template <typename W>
ffi::Error Run(ffi::DataType dtype, ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
               ffi::RemainingArgs packed, ffi::RemainingRets outputs) {
  const int64_t m_count = x.dimensions()[0], k_count = x.dimensions()[1];
  auto matrices = MatricesOf<W>(dtype, m_count, k_count, packed, outputs);
  if (!matrices.has_value()) return matrices.error();
  // The crew is sized once, by the first call, to XLA's intra-op thread count.
  const int64_t thread_count = std::max<int64_t>(1, pool.num_threads());
  RunParallel(thread_count, x.typed_data(), m_count, k_count, std::move(*matrices));
  return ffi::Error::Success();
}

// y_i = x · W_i for every packed W_i given (one or more), in one call.
ffi::Error SkinnyMatmulImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                            ffi::RemainingArgs packed, ffi::RemainingRets outputs) {
  if (x.dimensions().size() != 2 || packed.empty() || packed.size() != outputs.size()) {
    return ffi::Error::InvalidArgument(
        "skinny_matmul: want x [M,K], then packed weights and outputs one to one");
  }
  auto first = packed.get<ffi::AnyBuffer>(0);
  if (!first.has_value()) return first.error();
  const ffi::DataType dtype = first->element_type();
  switch (dtype) {
    case ffi::DataType::F32:
      return Run<float>(dtype, pool, x, packed, outputs);
    case ffi::DataType::BF16:
      return Run<uint16_t>(dtype, pool, x, packed, outputs);
    case ffi::DataType::S8:
      return Run<int8_t>(dtype, pool, x, packed, outputs);
    default:
      return ffi::Error::InvalidArgument(
          "skinny_matmul: packed weights must be f32, bf16 or s8");
  }
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MinidalleSkinnyMatmul, SkinnyMatmulImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .RemainingArgs()
                                  .RemainingRets());
