#include "engine/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "engine/thread_pool.h"

namespace vnp::engine::cpu {
namespace {

// Per-op wall time while profiling is on (CPU ops are synchronous: the time is the op's own).
class Profiler {
 public:
  void set(bool on) {
    std::lock_guard lock(mutex_);
    on_ = on;
    entries_.clear();
  }
  bool on() const { return on_; }
  void add(const std::string& op, double seconds) {
    std::lock_guard lock(mutex_);
    ProfileEntry& e = entries_[op];
    e.op = op;
    ++e.calls;
    e.seconds += seconds;
  }
  std::vector<ProfileEntry> report() {
    std::lock_guard lock(mutex_);
    std::vector<ProfileEntry> out;
    for (const auto& [op, e] : entries_) out.push_back(e);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
    return out;
  }

 private:
  std::mutex mutex_;
  std::atomic<bool> on_ = false;
  std::map<std::string, ProfileEntry> entries_;
};

Profiler& profiler() {
  static Profiler p;
  return p;
}

// Times the enclosing op when profiling is on; `name` is only built then.
class OpTimer {
 public:
  template <typename Name>
  explicit OpTimer(Name&& name) {
    if (profiler().on()) {
      name_ = name();
      start_ = std::chrono::steady_clock::now();
    }
  }
  ~OpTimer() {
    if (!name_.empty())
      profiler().add(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

 private:
  std::string name_;
  std::chrono::steady_clock::time_point start_;
};

constexpr std::size_t kAlignment = 64;  // a cache line, and enough for AVX-512 loads
constexpr std::int64_t kElementGrain = 1 << 15;
constexpr std::int64_t kRowGrain = 16;

class CpuBackend final : public Backend {
 public:
  std::shared_ptr<void> allocate(std::size_t bytes) override {
    std::size_t rounded = (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (!p) throw std::bad_alloc();
    return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  }

  void fill_zero(void* data, std::size_t bytes) override { std::memset(data, 0, bytes); }

  void copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes) override {
    if (!dst_device.is_cpu() || !src_device.is_cpu())
      throw std::invalid_argument("CPU backend asked to copy " + src_device.str() + " -> " +
                                  dst_device.str());
    std::memcpy(dst, src, bytes);
  }

  // Unknown: CPU batches are sized for the caches, not for the memory (pipeline::default_token_budget).
  MemoryInfo memory_info() override { return {}; }

  Tensor embedding(const Tensor& table, const Tensor& ids) override {
    OpTimer timer([] { return std::string("embedding"); });
    const std::int64_t n = ids.dim(0), vocab = table.dim(0), width = table.dim(1);
    const auto* id = ids.data<std::int32_t>();
    for (std::int64_t i = 0; i < n; ++i)
      if (id[i] < 0 || id[i] >= vocab)
        throw std::out_of_range("ops::embedding: token id " + std::to_string(id[i]) +
                                " outside the vocabulary of " + std::to_string(vocab));
    Tensor out = Tensor::empty({n, width}, DType::kF32);
    const float* src = table.data<float>();
    float* dst = out.data<float>();
    parallel_for(n, kRowGrain * 16, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        std::memcpy(dst + i * width, src + id[i] * width, sizeof(float) * width);
    });
    return out;
  }

  Tensor pack_linear_weight(const Tensor& weight) override {
    return weight.with_backend_layout(pack(weight));
  }

  Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, bool fuse_gelu) override {
    OpTimer timer([&] { return std::string(fuse_gelu ? "linear+gelu " : "linear ") + weight.describe(); });
    Tensor out = Tensor::empty({x.dim(0), weight.dim(0)}, DType::kF32);
    gemm(x, weight, bias, out, false, fuse_gelu);
    return out;
  }

  void linear_accumulate(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias) override {
    OpTimer timer([&] { return "linear+residual " + weight.describe(); });
    gemm(x, weight, bias, out, true, false);
  }

  Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                    DType /*out_dtype: f32, checked by ops*/) override {
    OpTimer timer([] { return std::string("layer_norm"); });
    Tensor out = Tensor::empty(x.shape(), DType::kF32);
    cpu::layer_norm(x.data<float>(), gamma.data<float>(), beta.data<float>(), eps, x.dim(0), x.dim(1),
                    out.data<float>());
    return out;
  }

  Tensor gelu(const Tensor& x) override {
    Tensor out = Tensor::empty(x.shape(), DType::kF32);
    const float* in = x.data<float>();
    float* o = out.data<float>();
    parallel_for(x.numel(), kElementGrain,
                 [&](std::int64_t b, std::int64_t e) { cpu::gelu(in + b, e - b, o + b); });
    return out;
  }

  Tensor gated_gelu(const Tensor& x) override {
    OpTimer timer([] { return std::string("gated_gelu"); });
    const std::int64_t half = x.dim(1) / 2;
    Tensor out = Tensor::empty({x.dim(0), half}, DType::kF32);
    cpu::gated_gelu(x.data<float>(), x.dim(0), half, out.data<float>());
    return out;
  }

  void add(Tensor& a, const Tensor& b) override {
    OpTimer timer([] { return std::string("add"); });
    float* pa = a.data<float>();
    const float* pb = b.data<float>();
    parallel_for(a.numel(), kElementGrain, [&](std::int64_t s, std::int64_t e) {
      for (std::int64_t i = s; i < e; ++i) pa[i] += pb[i];
    });
  }

  void scale(Tensor& x, float factor) override {
    OpTimer timer([] { return std::string("scale"); });
    float* p = x.data<float>();
    parallel_for(x.numel(), kElementGrain, [&](std::int64_t s, std::int64_t e) {
      for (std::int64_t i = s; i < e; ++i) p[i] *= factor;
    });
  }

  void scale_rows(Tensor& x, const Tensor& row_scale) override {
    float* p = x.data<float>();
    const float* f = row_scale.data<float>();
    const std::int64_t width = x.dim(1);
    parallel_for(x.dim(0), kRowGrain, [&](std::int64_t s, std::int64_t e) {
      for (std::int64_t r = s; r < e; ++r)
        for (std::int64_t j = 0; j < width; ++j) p[r * width + j] *= f[r];
    });
  }

  void rotary(Tensor& x, const Tensor& inv_freq, const PackedBatch& batch, int num_heads) override {
    cpu::rotary(x.data<float>(), inv_freq.data<float>(), batch.host_cu_seqlens, batch.max_seqlen, num_heads,
                x.dim(1) / num_heads);
  }

  Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                          const AttentionParams& p) override {
    OpTimer timer(
        [&] { return std::string(p.rotary_inv_freq.defined() ? "attention+rotary" : "attention"); });
    return attend(q, k, v, batch, p, false);
  }

  Tensor attention_padded(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                          const AttentionParams& p) override {
    OpTimer timer([] { return std::string("attention (v1 padded)"); });
    return attend(q, k, v, batch, p, true);
  }

  Tensor mean_pool_varlen(const Tensor& x, const std::vector<TokenRange>& ranges) override {
    OpTimer timer([] { return std::string("mean_pool"); });
    const std::int64_t width = x.dim(1), n = static_cast<std::int64_t>(ranges.size());
    Tensor out = Tensor::empty({n, width}, DType::kF32);
    const float* in = x.data<float>();
    float* o = out.data<float>();
    parallel_for(n, 1, [&](std::int64_t s, std::int64_t e) {
      std::vector<double> sum(static_cast<std::size_t>(width));
      for (std::int64_t r = s; r < e; ++r) {
        std::fill(sum.begin(), sum.end(), 0.0);
        const auto& range = ranges[static_cast<std::size_t>(r)];
        for (std::int64_t t = range.begin; t < range.end; ++t)
          for (std::int64_t j = 0; j < width; ++j) sum[static_cast<std::size_t>(j)] += in[t * width + j];
        const double count = range.end - range.begin;
        for (std::int64_t j = 0; j < width; ++j)
          o[r * width + j] = static_cast<float>(sum[static_cast<std::size_t>(j)] / count);
      }
    });
    return out;
  }

  Tensor cast(const Tensor& x, DType dtype) override {
    std::vector<float> values = x.to_floats();
    Tensor out = Tensor::empty(x.shape(), dtype);
    if (dtype == DType::kF32) {
      if (!values.empty()) std::memcpy(out.raw(), values.data(), out.nbytes());
      return out;
    }
    auto* bits = static_cast<std::uint16_t*>(out.raw());
    for (std::size_t i = 0; i < values.size(); ++i)
      bits[i] = dtype == DType::kF16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
    return out;
  }

 private:
  static std::shared_ptr<const PackedWeight> pack(const Tensor& weight) {
    return pack_weight(weight.raw(), weight.dtype(), weight.dim(0), weight.dim(1), weight.dtype());
  }

  // A weight packed at load (pack_linear_weight) is used as it is; any other is packed for this call.
  static void gemm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& out, bool accumulate,
                   bool fuse_gelu) {
    std::shared_ptr<const PackedWeight> packed =
        weight.backend_layout() ? std::static_pointer_cast<const PackedWeight>(weight.backend_layout())
                                : pack(weight);
    gemm_packed(x.dim(0), x.data<float>(), *packed, out.data<float>(),
                bias.defined() ? bias.data<float>() : nullptr, accumulate, fuse_gelu);
  }

  static Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                       const AttentionParams& p, bool padded) {
    if (p.rotary_inv_freq.defined()) {  // rotate copies, then attend without rotary
      Tensor qr = q.clone(), kr = k.clone();
      const int head_dim = static_cast<int>(q.dim(1) / p.num_heads);
      for (Tensor* x : {&qr, &kr})
        cpu::rotary(x->data<float>(), p.rotary_inv_freq.data<float>(), batch.host_cu_seqlens,
                    batch.max_seqlen, p.num_heads, head_dim);
      AttentionParams plain = p;
      plain.rotary_inv_freq = Tensor{};
      return attend(qr, kr, v, batch, plain, padded);
    }
    Tensor out = Tensor::empty(q.shape(), DType::kF32);
    attention(q.data<float>(), k.data<float>(), v.data<float>(), batch.host_cu_seqlens, batch.max_seqlen,
              p.num_heads, q.dim(1) / p.num_heads, p.softmax_scale,
              p.alibi_slopes.defined() ? p.alibi_slopes.data<float>() : nullptr, padded, out.data<float>());
    return out;
  }
};

}  // namespace

void set_profiling(bool on) {
  profiler().set(on);
}

std::vector<ProfileEntry> profile_report() {
  return profiler().report();
}

Backend& backend() {
  static CpuBackend b;
  return b;
}

}  // namespace vnp::engine::cpu
