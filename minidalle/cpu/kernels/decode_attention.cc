// Attention of one new token over a prefix of its keys, as an XLA FFI custom call for the CPU:
// out[b, h] = softmax(scale · q[b, h] · K[b, h, :n]ᵀ) · V[b, h, :n], n = visible_count (one for
// all rows: the KV cache's filled length; or one per row: the prompt's length, for
// cross-attention, whose padding always comes last).
//
// Why: the decode step's attention, written as two einsums over the whole [B, H, S, D] cache with
// a mask, was a fifth of a 2x2 grid's token loop on a CPU (XLA's batched matrix-vector products
// run far below the memory bandwidth, and they read all S positions when only n are filled).
// This kernel reads only the n filled positions, once, and computes in fp32 like the einsum path
// (`blocks.attend`). Keys and values are fp32, or bf16 (a model run in bf16 keeps its cache in
// bf16: half the bytes to read each step), also as their uint16 bit patterns (kv_cache.py).
// The (b, h) pairs are shared out between the threads of the crew (crew.h). Each pass over a
// stream prefetches the stream the next pass reads, row for row: the keys pass the values, the
// values pass the next pair's keys, so memory is never idle between passes or pairs.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "crew.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// exp for 8 floats: Cephes' expf (range reduction by ln 2, then a degree-5 polynomial), about
// 1 ulp on the inputs softmax gives it (max-subtracted scores, <= 0).
inline __m256 Exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)),
                    _mm256_set1_ps(-88.3762626647949f));
  __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f),
                                             _mm256_set1_ps(0.5f)));
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  __m256i power = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(power));
}

// Eight cache values as fp32: bf16 is the top half of an fp32, so widening is a zero-extend and
// a shift.
inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const uint16_t* p) {
  __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
}

inline float Sum8(__m256 v) {
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  half = _mm_add_ss(half, _mm_movehdup_ps(half));
  return _mm_cvtss_f32(half);
}

// exp(scores[j] - max) in place for j < n, zeroing the padding lanes; returns 1 / their sum.
inline float SoftmaxNumerators(float* scores, int64_t n, float max_score) {
  __m256 total = _mm256_setzero_ps();
  const __m256 shift = _mm256_set1_ps(max_score);
  for (int64_t j = 0; j < n; j += 8) {  // the scratch has 8 floats of room past n
    __m256 p = Exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + j), shift));
    if (j + 8 > n) {
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      __m256i is_valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - j)), lane);
      p = _mm256_and_ps(p, _mm256_castsi256_ps(is_valid));
    }
    _mm256_storeu_ps(scores + j, p);
    total = _mm256_add_ps(total, p);
  }
  return 1.0f / Sum8(total);
}

// Rows [0, row_count) of a [n, D] stream, into L2: a pass runs up to a whole stream (32 KiB at
// n = 256 in bf16) ahead of the pass that reads it. Into L2 measured faster than into L1, and
// far faster than prefetching only the next pair's first kilobyte (bench/README.md).
template <typename T>
inline void PrefetchRows(const T* rows, int64_t d, int64_t row_count) {
  const char* first = reinterpret_cast<const char*>(rows);
  for (int64_t offset = 0; offset < row_count * d * int64_t(sizeof(T)); offset += 64) {
    _mm_prefetch(first + offset, _MM_HINT_T1);
  }
}

// One (b, h) with D = 8 · kChunks: q [D], keys/values [n, D] rows of the cache, out [D]; scores
// is scratch [n + 8]. q and the output stay in registers; keys are read four rows at a time and
// values once, both in memory order. next_keys: the next pair's keys (to prefetch), or null.
template <int kChunks, typename T>
void AttendOne(const float* q, const T* keys, const T* values, int64_t n, float scale,
               float* scores, float* out, const T* next_keys) {
  constexpr int64_t d = 8 * kChunks;
  __m256 query[kChunks];
  for (int c = 0; c < kChunks; ++c) query[c] = _mm256_mul_ps(_mm256_loadu_ps(q + 8 * c),
                                                             _mm256_set1_ps(scale));
  __m128 max4 = _mm_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const T* k = keys + j * d;
    PrefetchRows(values + j * d, d, 4);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int c = 0; c < kChunks; ++c) {
      a0 = _mm256_fmadd_ps(query[c], Load8(k + 8 * c), a0);
      a1 = _mm256_fmadd_ps(query[c], Load8(k + d + 8 * c), a1);
      a2 = _mm256_fmadd_ps(query[c], Load8(k + 2 * d + 8 * c), a2);
      a3 = _mm256_fmadd_ps(query[c], Load8(k + 3 * d + 8 * c), a3);
    }
    // [a0 a1 a2 a3] summed across lanes: two rounds of pairwise adds, then the two halves
    __m256 sums = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    __m128 four = _mm_add_ps(_mm256_castps256_ps128(sums), _mm256_extractf128_ps(sums, 1));
    _mm_storeu_ps(scores + j, four);
    max4 = _mm_max_ps(max4, four);
  }
  float max_score = std::max(std::max(max4[0], max4[1]), std::max(max4[2], max4[3]));
  PrefetchRows(values + j * d, d, n - j);
  for (; j < n; ++j) {
    __m256 acc = _mm256_setzero_ps();
    for (int c = 0; c < kChunks; ++c) {
      acc = _mm256_fmadd_ps(query[c], Load8(keys + j * d + 8 * c), acc);
    }
    scores[j] = Sum8(acc);
    max_score = std::max(max_score, scores[j]);
  }
  const float inverse_total = SoftmaxNumerators(scores, n, max_score);
  __m256 acc[kChunks];
  for (int c = 0; c < kChunks; ++c) acc[c] = _mm256_setzero_ps();
  for (j = 0; j < n; ++j) {
    if (next_keys != nullptr && j % 4 == 0) {
      PrefetchRows(next_keys + j * d, d, std::min<int64_t>(4, n - j));
    }
    const __m256 p = _mm256_set1_ps(scores[j]);
    for (int c = 0; c < kChunks; ++c) {
      acc[c] = _mm256_fmadd_ps(p, Load8(values + j * d + 8 * c), acc[c]);
    }
  }
  for (int c = 0; c < kChunks; ++c) {
    _mm256_storeu_ps(out + 8 * c, _mm256_mul_ps(acc[c], _mm256_set1_ps(inverse_total)));
  }
}

template <typename T>
using AttendFunction = void (*)(const float*, const T*, const T*, int64_t, float, float*, float*,
                                const T*);
template <typename T>
constexpr AttendFunction<T> kAttendForChunks[] = {
    nullptr, AttendOne<1, T>, AttendOne<2, T>, AttendOne<3, T>, AttendOne<4, T>,
    AttendOne<5, T>, AttendOne<6, T>, AttendOne<7, T>, AttendOne<8, T>};
constexpr int64_t kMaxChunks = 8;  // head dims up to 64: the published mini and mega use 64

// Every (b, h) pair of q [B·H, D] over keys/values [B·H, S, D], split between the crew.
template <typename T>
void AttendAll(const float* q, const T* k, const T* v, const int32_t* counts, int64_t count_size,
               int64_t pair_count, int64_t heads, int64_t s, int64_t d, float scale, float* o,
               int64_t thread_count) {
  minidalle::Crew& crew = minidalle::Crew::Get(thread_count);
  const int64_t part_count = std::min(pair_count, crew.thread_count() * 4);
  const AttendFunction<T> attend = kAttendForChunks<T>[d / 8];
  crew.Run(part_count, [=](int64_t part) {
    std::vector<float> scores(s + 8);
    const int64_t end = pair_count * (part + 1) / part_count;
    for (int64_t pair = pair_count * part / part_count; pair < end; ++pair) {
      const int64_t n = std::clamp<int64_t>(counts[count_size == 1 ? 0 : pair / heads], 1, s);
      attend(q + pair * d, k + pair * s * d, v + pair * s * d, n, scale, scores.data(),
             o + pair * d, pair + 1 < end ? k + (pair + 1) * s * d : nullptr);
    }
  });
}

ffi::Error DecodeAttentionImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> queries,
                               ffi::AnyBuffer keys, ffi::AnyBuffer values,
                               ffi::Buffer<ffi::S32> visible_count, float scale,
                               ffi::ResultBuffer<ffi::F32> out) {
  auto q_dims = queries.dimensions();
  auto k_dims = keys.dimensions();
  auto v_dims = values.dimensions();
  if (q_dims.size() != 3 || k_dims.size() != 4 || v_dims.size() != 4 ||
      !std::equal(k_dims.begin(), k_dims.end(), v_dims.begin()) || k_dims[0] != q_dims[0] ||
      k_dims[1] != q_dims[1] || k_dims[3] != q_dims[2] || q_dims[2] % 8 != 0 ||
      q_dims[2] > 8 * kMaxChunks) {
    return ffi::Error::InvalidArgument(
        "decode_attention: want q [B,H,D] and keys/values [B,H,S,D], D in 8, 16, .., 64");
  }
  const int64_t heads = q_dims[1], pair_count = q_dims[0] * heads, d = q_dims[2], s = k_dims[2];
  const int64_t count_size = visible_count.element_count();
  if (count_size != 1 && count_size != q_dims[0]) {
    return ffi::Error::InvalidArgument("decode_attention: want one visible_count, or one per row");
  }
  const int64_t thread_count = std::max<int64_t>(1, pool.num_threads());
  const auto type = keys.element_type();
  if (values.element_type() != type) {
    return ffi::Error::InvalidArgument("decode_attention: keys and values differ in dtype");
  }
  if (type == ffi::DataType::F32) {
    AttendAll(queries.typed_data(), static_cast<const float*>(keys.untyped_data()),
              static_cast<const float*>(values.untyped_data()), visible_count.typed_data(),
              count_size, pair_count, heads, s, d, scale, out->typed_data(), thread_count);
  } else if (type == ffi::DataType::BF16 || type == ffi::DataType::U16) {  // U16: bf16 bits
    AttendAll(queries.typed_data(), static_cast<const uint16_t*>(keys.untyped_data()),
              static_cast<const uint16_t*>(values.untyped_data()), visible_count.typed_data(),
              count_size, pair_count, heads, s, d, scale, out->typed_data(), thread_count);
  } else {
    return ffi::Error::InvalidArgument(
        "decode_attention: keys and values must be f32, bf16 or bf16 bits (u16)");
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MinidalleDecodeAttention, DecodeAttentionImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Attr<float>("scale")
                                  .Ret<ffi::Buffer<ffi::F32>>());
