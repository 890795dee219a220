// Attention on the CPU. One task per (sequence, head, block of query rows): scores by sgemm, fp32
// softmax, ·V by sgemm straight into the output columns of that head. Tasks never share a
// reduction, so the thread count cannot change a bit of the result.
//
// The padded (v1) path first copies q, k, v into an [n, max_seqlen] rectangle whose pad rows hold
// 1.0, computes every query row against every key of the rectangle, sets the pad keys' scores to
// -inf (the key-padding mask), and finally copies the real rows back to the packed layout.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/vector_math.h"
#include "engine/thread_pool.h"

namespace vnp::engine::cpu {
namespace {

// Query rows per task: bounds the scores buffer to kQueryBlock x seq_len floats.
constexpr std::int64_t kQueryBlock = 128;
constexpr float kPadFill = 1.0f;

struct HeadView {
  const float* q;  // first query row of the block, this head's columns
  const float* k;  // first key row of the sequence, this head's columns
  const float* v;
  float* out;
  std::int64_t ld;  // row stride of q, k, v and out
};

constexpr int kLanes = 16;  // independent partial max/sum lanes: vectorizable, fixed order

// Softmax of one row of scores in place, in fp32 with the max subtracted; the sum is taken in
// kLanes fp32 lanes combined in double (a fixed order, whatever the thread).
VNP_VECTORIZE void softmax_row(float* s, std::int64_t n) {
  float lanes[kLanes];
  for (float& l : lanes) l = -std::numeric_limits<float>::infinity();
  std::int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = lanes[l] > s[j + l] ? lanes[l] : s[j + l];
  float max = -std::numeric_limits<float>::infinity();
  for (; j < n; ++j) max = max > s[j] ? max : s[j];
  for (float l : lanes) max = max > l ? max : l;

  float sums[kLanes] = {};
  for (j = 0; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      s[j + l] = exp_approx(s[j + l] - max);
      sums[l] += s[j + l];
    }
  double sum = 0.0;
  for (; j < n; ++j) {
    s[j] = exp_approx(s[j] - max);
    sum += s[j];
  }
  for (float l : sums) sum += l;
  auto inv = static_cast<float>(1.0 / sum);
  for (j = 0; j < n; ++j) s[j] *= inv;
}

// scores[i, j] += -slope·|q0 + i - j| (ALiBi), and -inf for keys j >= valid (key padding).
VNP_VECTORIZE void bias_and_mask_row(float* s, std::int64_t n, std::int64_t query_pos, std::int64_t valid,
                                     float slope) {
  if (slope != 0.0f)
    for (std::int64_t j = 0; j < n; ++j) {
      std::int64_t d = query_pos - j;
      s[j] += slope * -static_cast<float>(d < 0 ? -d : d);
    }
  for (std::int64_t j = valid; j < n; ++j) s[j] = -std::numeric_limits<float>::infinity();
}

// rows queries (positions q0..q0+rows) against n_keys keys, of which the first valid_keys are real.
void attend_block(const HeadView& h, std::int64_t q0, std::int64_t rows, std::int64_t n_keys,
                  std::int64_t valid_keys, std::int64_t head_dim, float scale, float slope, float* scores) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows),
              static_cast<blasint>(n_keys), static_cast<blasint>(head_dim), scale, h.q,
              static_cast<blasint>(h.ld), h.k, static_cast<blasint>(h.ld), 0.0f, scores,
              static_cast<blasint>(n_keys));
  for (std::int64_t i = 0; i < rows; ++i) {
    float* s = scores + i * n_keys;
    bias_and_mask_row(s, n_keys, q0 + i, valid_keys, slope);
    softmax_row(s, n_keys);
    std::fill(s + valid_keys, s + n_keys, 0.0f);  // masked keys: exactly 0, as exp(-inf)
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows),
              static_cast<blasint>(head_dim), static_cast<blasint>(n_keys), 1.0f, scores,
              static_cast<blasint>(n_keys), h.v, static_cast<blasint>(h.ld), 0.0f, h.out,
              static_cast<blasint>(h.ld));
}

// Tasks: for each sequence, each head, each block of query rows (rows_of(s) rows per sequence).
struct TaskGrid {
  std::vector<std::int64_t> first_task;  // per sequence, prefix sums of its task counts
  std::int64_t heads, blocks_total;

  TaskGrid(const std::vector<std::int64_t>& rows_per_seq, int num_heads) : heads(num_heads) {
    first_task.push_back(0);
    for (auto rows : rows_per_seq)
      first_task.push_back(first_task.back() + num_heads * ((rows + kQueryBlock - 1) / kQueryBlock));
    blocks_total = first_task.back();
  }
  // (sequence, head, block) of task t.
  void locate(std::int64_t t, std::int64_t& seq, std::int64_t& head, std::int64_t& block) const {
    seq = std::upper_bound(first_task.begin(), first_task.end(), t) - first_task.begin() - 1;
    std::int64_t local = t - first_task[static_cast<std::size_t>(seq)];
    std::int64_t blocks =
        (first_task[static_cast<std::size_t>(seq) + 1] - first_task[static_cast<std::size_t>(seq)]) / heads;
    head = local / blocks;
    block = local % blocks;
  }
};

thread_local std::vector<float> t_scores;

float* scores_buffer(std::int64_t n) {
  if (t_scores.size() < static_cast<std::size_t>(n)) t_scores.resize(static_cast<std::size_t>(n));
  return t_scores.data();
}

void attention_packed(const float* q, const float* k, const float* v, const std::vector<std::int32_t>& cu,
                      int num_heads, std::int64_t head_dim, float scale, const float* slopes, float* out) {
  const std::int64_t width = num_heads * head_dim;
  std::vector<std::int64_t> lens;
  for (std::size_t s = 0; s + 1 < cu.size(); ++s) lens.push_back(cu[s + 1] - cu[s]);
  TaskGrid grid(lens, num_heads);
  parallel_for(grid.blocks_total, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      std::int64_t s, h, b;
      grid.locate(t, s, h, b);
      std::int64_t len = lens[static_cast<std::size_t>(s)], first = cu[static_cast<std::size_t>(s)];
      std::int64_t q0 = b * kQueryBlock, rows = std::min(kQueryBlock, len - q0);
      std::int64_t col = h * head_dim;
      HeadView view{q + (first + q0) * width + col, k + first * width + col, v + first * width + col,
                    out + (first + q0) * width + col, width};
      attend_block(view, q0, rows, len, len, head_dim, scale, slopes ? slopes[h] : 0.0f,
                   scores_buffer(rows * len));
    }
  });
}

// Copies the packed rows of each sequence into a [n, max_len, width] rectangle filled with kPadFill.
std::vector<float> pad_to_rectangle(const float* x, const std::vector<std::int32_t>& cu, std::int64_t max_len,
                                    std::int64_t width) {
  std::int64_t n = static_cast<std::int64_t>(cu.size()) - 1;
  std::vector<float> rect(static_cast<std::size_t>(n * max_len * width), kPadFill);
  for (std::int64_t s = 0; s < n; ++s)
    std::copy(x + cu[static_cast<std::size_t>(s)] * width, x + cu[static_cast<std::size_t>(s) + 1] * width,
              rect.begin() + s * max_len * width);
  return rect;
}

void attention_rectangle(const float* q, const float* k, const float* v, const std::vector<std::int32_t>& cu,
                         std::int64_t max_len, int num_heads, std::int64_t head_dim, float scale,
                         const float* slopes, float* out) {
  const std::int64_t width = num_heads * head_dim;
  const std::int64_t n = static_cast<std::int64_t>(cu.size()) - 1;
  auto pq = pad_to_rectangle(q, cu, max_len, width);
  auto pk = pad_to_rectangle(k, cu, max_len, width);
  auto pv = pad_to_rectangle(v, cu, max_len, width);
  std::vector<float> pout(pq.size());
  // Every row of the rectangle is a query, pad rows included (v1 computes them, then drops them).
  TaskGrid grid(std::vector<std::int64_t>(static_cast<std::size_t>(n), max_len), num_heads);
  parallel_for(grid.blocks_total, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      std::int64_t s, h, b;
      grid.locate(t, s, h, b);
      std::int64_t len = cu[static_cast<std::size_t>(s) + 1] - cu[static_cast<std::size_t>(s)];
      std::int64_t q0 = b * kQueryBlock, rows = std::min(kQueryBlock, max_len - q0);
      std::int64_t base = s * max_len * width + h * head_dim;
      HeadView view{pq.data() + base + q0 * width, pk.data() + base, pv.data() + base,
                    pout.data() + base + q0 * width, width};
      attend_block(view, q0, rows, max_len, len, head_dim, scale, slopes ? slopes[h] : 0.0f,
                   scores_buffer(rows * max_len));
    }
  });
  for (std::int64_t s = 0; s < n; ++s) {
    std::int64_t len = cu[static_cast<std::size_t>(s) + 1] - cu[static_cast<std::size_t>(s)];
    std::copy(pout.begin() + s * max_len * width, pout.begin() + (s * max_len + len) * width,
              out + cu[static_cast<std::size_t>(s)] * width);
  }
}

}  // namespace

void attention(const float* q, const float* k, const float* v, const std::vector<std::int32_t>& cu_seqlens,
               std::int32_t max_seqlen, int num_heads, std::int64_t head_dim, float softmax_scale,
               const float* alibi_slopes, bool padded, float* out) {
  if (padded)
    attention_rectangle(q, k, v, cu_seqlens, max_seqlen, num_heads, head_dim, softmax_scale, alibi_slopes,
                        out);
  else
    attention_packed(q, k, v, cu_seqlens, num_heads, head_dim, softmax_scale, alibi_slopes, out);
}

}  // namespace vnp::engine::cpu
