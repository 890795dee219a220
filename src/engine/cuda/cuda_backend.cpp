#include "engine/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/cuda/arena.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/kernels.h"
#include "util/env.h"
#include "util/error.h"

namespace vnp::engine::cuda {
namespace {

Fp8Scales fp8_scales_from_env() {
  const auto value = env::get("VIRNUCPRO_FP8_SCALES");
  if (!value || *value == "row") return Fp8Scales::kRow;
  if (*value == "block") return Fp8Scales::kBlock;
  throw UsageError("VIRNUCPRO_FP8_SCALES must be row or block, got '" + *value + "'");
}

// GPU time per op kind, measured with CUDA events around each (outermost) op when switched on.
class Profiler {
 public:
  ~Profiler() {
    for (auto e : pool_) cudaEventDestroy(e);
  }
  bool on() const { return on_; }
  void set(bool on) { on_ = on; }

  // Start of an op: counted = profiling was on; recorded = outermost op, its events are recorded.
  struct Mark {
    bool counted = false, recorded = false;
  };
  Mark begin(const std::string& op, cudaStream_t stream) {
    if (!on_) return {};
    const bool outermost = depth_++ == 0;
    if (outermost) pending_.push_back({op, event(stream), nullptr});
    return {true, outermost};
  }
  void end(Mark mark, cudaStream_t stream) {
    if (!mark.counted) return;
    --depth_;
    if (mark.recorded) pending_.back().stop = event(stream);
  }

  std::vector<ProfileEntry> report() {
    std::map<std::string, ProfileEntry> by_op;
    for (auto& p : pending_) {
      if (!p.stop) continue;
      check(cudaEventSynchronize(p.stop), "cudaEventSynchronize");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, p.start, p.stop), "cudaEventElapsedTime");
      auto& e = by_op[p.op];
      e.op = p.op;
      e.milliseconds += ms;
      ++e.calls;
    }
    for (auto& p : pending_) {
      free_.push_back(p.start);
      if (p.stop) free_.push_back(p.stop);
    }
    pending_.clear();
    std::vector<ProfileEntry> out;
    for (auto& [op, e] : by_op) out.push_back(e);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.milliseconds > b.milliseconds; });
    return out;
  }

 private:
  struct Pending {
    std::string op;
    cudaEvent_t start, stop;
  };
  cudaEvent_t event(cudaStream_t stream) {
    cudaEvent_t e;
    if (free_.empty()) {
      check(cudaEventCreate(&e), "cudaEventCreate");
      pool_.push_back(e);
    } else {
      e = free_.back();
      free_.pop_back();
    }
    check(cudaEventRecord(e, stream), "cudaEventRecord");
    return e;
  }
  bool on_ = false;
  int depth_ = 0;
  std::vector<Pending> pending_;
  std::vector<cudaEvent_t> pool_, free_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index), device_(Device::cuda(index)), arena_(index) {
    select();
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    gemm_ = std::make_unique<Gemm>(stream_);
    if (env::get_bool("VIRNUCPRO_CUDA_POISON").value_or(false)) arena_.set_poison(stream_);
    error_flag_ = arena_.allocate(2 * sizeof(int));
    check(cudaMemsetAsync(error_flag_.get(), 0, 2 * sizeof(int), stream_), "cudaMemset(error flag)");
    check(cudaEventCreateWithFlags(&staging_done_, cudaEventDisableTiming), "cudaEventCreate(staging)");
  }

  ~CudaBackend() override {
    // Backends live until the process ends (backend_object); this only tidies up if one ever is not.
    if (staging_done_) {
      cudaEventSynchronize(staging_done_);
      cudaEventDestroy(staging_done_);
    }
    if (staging_) cudaFreeHost(staging_);
  }

  std::shared_ptr<void> allocate(std::size_t bytes) override { return arena_.allocate(bytes); }

  void fill_zero(void* data, std::size_t bytes) override {
    select();
    check(cudaMemsetAsync(data, 0, bytes, stream_), "cudaMemsetAsync");
  }

  void copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes) override {
    if (bytes == 0) return;
    select();
    if (dst_device.is_cuda() && src_device.is_cuda()) {
      if (dst_device == src_device)
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_),
              "cudaMemcpy(device to device)");
      else
        check(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, bytes, stream_),
              "cudaMemcpyPeer");
      return;
    }
    if (dst_device.is_cpu() && src_device.is_cpu()) {
      std::memcpy(dst, src, bytes);
      return;
    }
    // Uploads return at once: the bytes are in the staging buffer, the GPU takes them in stream order.
    if (src_device.is_cpu() && upload_staged(dst, src, bytes)) return;
    const auto kind = dst_device.is_cpu() ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice;
    check(cudaMemcpyAsync(dst, src, bytes, kind, stream_), "cudaMemcpy(host <-> device)");
    // A download is read by the caller as soon as we return (and an unstaged upload's host side may be
    // released): wait. This is also where kernel faults and bad token ids surface.
    sync_and_check();
  }

  MemoryInfo memory_info() override {
    select();
    std::size_t free = 0, total = 0;
    check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    // Blocks the arena caches but no tensor uses are free for the next batches too.
    const std::size_t in_use = arena_.bytes_in_use(), reserved = arena_.bytes_reserved();
    const std::size_t cached = reserved > in_use ? reserved - in_use : 0;  // read apart: may cross
    return {std::min<std::uint64_t>(std::uint64_t{free} + cached, total), total};
  }

  Tensor embedding(const Tensor& table, const Tensor& ids) override {
    auto scope = op("embedding");
    const auto vocab = table.dim(0), dim = table.dim(1), n = ids.numel();
    Tensor out = empty({n, dim}, table.dtype());
    kernels::embedding(table.raw(), table.dtype(), vocab, dim, ids.data<std::int32_t>(), n, out.raw(), flag(),
                       stream_);
    return out;
  }

  Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, bool fuse_gelu) override {
    auto scope = op(profiler_.on() ? std::string(fuse_gelu ? "linear+gelu " : "linear ") + weight.describe()
                                   : std::string());
    if (weight.dtype() == DType::kF8E4M3) return linear_f8(x, weight, bias, fuse_gelu ? kF8Gelu : kF8Plain);
    const auto in = weight.dim(1), out_features = weight.dim(0), rows = x.numel() / in;
    Tensor y = empty({rows, out_features}, x.dtype());
    run_linear(x, weight, bias, y, false);
    if (fuse_gelu) kernels::gelu(y.raw(), y.raw(), y.dtype(), y.numel(), stream_);
    return y;
  }

  void linear_accumulate(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias) override {
    auto scope = op(profiler_.on() ? "linear+residual " + weight.describe() : std::string());
    if (weight.dtype() == DType::kF8E4M3)
      linear_f8(x, weight, bias, kF8Accumulate, &out);
    else
      run_linear(x, weight, bias, out, true);
  }

  Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps,
                    DType out_dtype) override {
    auto scope = op("layer_norm");
    const auto cols = x.dim(-1), rows = x.numel() / std::max<std::int64_t>(cols, 1);
    const Tensor g = as(gamma, DType::kF32), b = as(beta, DType::kF32);
    Tensor out = empty(x.shape(), out_dtype);
    if (out_dtype == DType::kF8E4M3 && x.ndim() == 2 && block_scaled(cols)) {
      Tensor scale = empty(f8_block_scale_shape(Tensor::F8Scaling::kBlock1x128, rows, cols), DType::kF32);
      kernels::layer_norm_f8_1x128(x.raw(), x.dtype(), g.data<float>(), b.data<float>(), rows, cols, eps,
                                   static_cast<std::uint8_t*>(out.raw()), scale.data<float>(), stream_);
      return out.with_block_scale(std::move(scale), Tensor::F8Scaling::kBlock1x128);
    }
    if (out_dtype == DType::kF8E4M3) {
      Tensor scale = empty({rows}, DType::kF32);
      kernels::layer_norm_f8(x.raw(), x.dtype(), g.data<float>(), b.data<float>(), rows, cols, eps,
                             static_cast<std::uint8_t*>(out.raw()), scale.data<float>(), stream_);
      return out.with_row_scale(std::move(scale));
    }
    kernels::layer_norm(x.raw(), x.dtype(), g.data<float>(), b.data<float>(), rows, cols, eps, out.raw(),
                        stream_);
    return out;
  }

  Tensor gelu(const Tensor& x) override {
    auto scope = op("gelu");
    Tensor out = empty(x.shape(), x.dtype());
    kernels::gelu(x.raw(), out.raw(), x.dtype(), x.numel(), stream_);
    return out;
  }

  Tensor gated_gelu(const Tensor& x) override {
    auto scope = op("gated_gelu");
    const auto rows = x.dim(0), f = x.dim(1) / 2;
    Tensor out = empty({rows, f}, x.dtype());
    kernels::gated_gelu(x.raw(), out.raw(), x.dtype(), rows, f, stream_);
    return out;
  }

  void add(Tensor& a, const Tensor& b) override {
    auto scope = op("add");
    const Tensor bb = as(b, a.dtype());
    kernels::add(a.raw(), bb.raw(), a.dtype(), a.numel(), stream_);
  }

  void scale(Tensor& x, float factor) override {
    auto scope = op("scale");
    kernels::scale(x.raw(), x.dtype(), x.numel(), factor, stream_);
  }

  void scale_rows(Tensor& x, const Tensor& row_scale) override {
    auto scope = op("scale_rows");
    const Tensor s = as(row_scale, DType::kF32);
    kernels::scale_rows(x.raw(), x.dtype(), x.dim(0), x.numel() / std::max<std::int64_t>(x.dim(0), 1),
                        s.data<float>(), stream_);
  }

  void rotary(Tensor& x, const Tensor& inv_freq, const PackedBatch& batch, int num_heads) override {
    auto scope = op("rotary");
    const Tensor f = as(inv_freq, DType::kF32);
    const int head_dim = static_cast<int>(x.dim(1) / num_heads);
    kernels::rotary(x.raw(), x.dtype(), x.dim(0), num_heads, head_dim, f.data<float>(), cu_seqlens(batch),
                    static_cast<int>(batch.num_sequences()), stream_);
  }

  Tensor attention_varlen(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                          const AttentionParams& params) override {
    auto scope = op("attention_varlen");
    Tensor out = empty(q.shape(), q.dtype());
    Tensor slopes = params.alibi_slopes.defined() ? as(params.alibi_slopes, DType::kF32) : Tensor{};
    Tensor table, q_rotated, k_rotated;
    kernels::AttentionArgs args{q.raw(),
                                k.raw(),
                                v.raw(),
                                out.raw(),
                                q.dtype(),
                                params.num_heads,
                                static_cast<int>(q.dim(1) / params.num_heads),
                                cu_seqlens(batch),
                                static_cast<int>(batch.num_sequences()),
                                batch.max_seqlen,
                                params.softmax_scale,
                                slopes.defined() ? slopes.data<float>() : nullptr};
    if (params.rotary_inv_freq.defined()) {
      if (kernels::attention_kernel_for(args) == kernels::AttentionKernel::kShort) {
        // The short kernel rotates q and k as it loads them, from one (cos, sin) table per batch.
        const int half = args.head_dim / 2;
        table = empty({batch.max_seqlen, 2 * half}, DType::kF32);
        kernels::rotary_table(params.rotary_inv_freq.data<float>(), half, batch.max_seqlen,
                              table.data<float>(), stream_);
        args.rope = table.data<float>();
      } else {
        q_rotated = rotated(q, params, batch);
        k_rotated = rotated(k, params, batch);
        args.q = q_rotated.raw();
        args.k = k_rotated.raw();
      }
    }
    kernels::attention_varlen(args, stream_);
    return out;
  }

  // A rotated copy of q or k, for the attention paths that do not rotate inside their kernel.
  Tensor rotated(const Tensor& x, const AttentionParams& params, const PackedBatch& batch) {
    Tensor copy = empty(x.shape(), x.dtype());
    this->copy(copy.raw(), device_, x.raw(), device_, x.nbytes());
    const int head_dim = static_cast<int>(x.dim(1) / params.num_heads);
    kernels::rotary(copy.raw(), copy.dtype(), copy.dim(0), params.num_heads, head_dim,
                    params.rotary_inv_freq.data<float>(), cu_seqlens(batch),
                    static_cast<int>(batch.num_sequences()), stream_);
    return copy;
  }

  // v1.0 way: pad to [n, heads, T, hd], scores by batched GEMM (fp32 out), masked fp32 softmax,
  // probabilities·V by batched GEMM, unpack.
  Tensor attention_padded(const Tensor& q, const Tensor& k, const Tensor& v, const PackedBatch& batch,
                          const AttentionParams& params) override {
    auto scope = op("attention_padded");
    const bool rotary = params.rotary_inv_freq.defined();
    const Tensor q_in = rotary ? rotated(q, params, batch) : q, k_in = rotary ? rotated(k, params, batch) : k;
    const int n = static_cast<int>(batch.num_sequences()), heads = params.num_heads, T = batch.max_seqlen;
    const int hd = static_cast<int>(q.dim(1) / heads);
    const DType dt = q.dtype();
    const std::int64_t mats = std::int64_t{n} * heads;
    const std::int32_t* cu = cu_seqlens(batch);
    Tensor out = empty(q.shape(), dt);
    if (mats == 0 || T == 0) return out;
    auto pad = [&](const Tensor& x) {
      Tensor p = empty({mats, T, hd}, dt);
      kernels::pad_heads(x.raw(), p.raw(), dt, cu, n, heads, hd, T, 1.0f, stream_);
      return p;
    };
    const Tensor qp = pad(q_in), kp = pad(k_in), vp = pad(v);
    Tensor scores = empty({mats, T, T}, DType::kF32);
    GemmProblem s;
    s.m = T, s.n = T, s.k = hd, s.lda = hd, s.ldb = hd, s.ldc = T, s.trans_b = true;
    s.ab_type = dt, s.c_type = DType::kF32, s.batch = static_cast<int>(mats);
    s.stride_a = std::int64_t{T} * hd, s.stride_b = std::int64_t{T} * hd, s.stride_c = std::int64_t{T} * T;
    gemm_->run(s, qp.raw(), kp.raw(), scores.raw(), nullptr, params.softmax_scale);
    Tensor probs = empty({mats, T, T}, dt);
    Tensor slopes = params.alibi_slopes.defined() ? as(params.alibi_slopes, DType::kF32) : Tensor{};
    kernels::masked_softmax(scores.data<float>(), probs.raw(), dt, cu, n, heads, T,
                            slopes.defined() ? slopes.data<float>() : nullptr, stream_);
    Tensor op = empty({mats, T, hd}, dt);
    GemmProblem o;
    o.m = T, o.n = hd, o.k = T, o.lda = T, o.ldb = hd, o.ldc = hd, o.trans_b = false;
    o.ab_type = dt, o.c_type = dt, o.batch = static_cast<int>(mats);
    o.stride_a = std::int64_t{T} * T, o.stride_b = std::int64_t{T} * hd, o.stride_c = std::int64_t{T} * hd;
    gemm_->run(o, probs.raw(), vp.raw(), op.raw(), nullptr);
    kernels::unpad_heads(op.raw(), out.raw(), dt, cu, n, heads, hd, T, stream_);
    return out;
  }

  Tensor mean_pool_varlen(const Tensor& x, const std::vector<TokenRange>& ranges) override {
    auto scope = op("mean_pool");
    const auto cols = x.dim(1);
    std::vector<std::int32_t> flat;
    flat.reserve(ranges.size() * 2);
    for (const auto& r : ranges) flat.insert(flat.end(), {r.begin, r.end});
    Tensor out = empty({static_cast<std::int64_t>(ranges.size()), cols}, DType::kF32);
    if (ranges.empty()) return out;
    Tensor device_ranges = empty({static_cast<std::int64_t>(flat.size())}, DType::kI32);
    copy(device_ranges.raw(), device_, flat.data(), Device::cpu(), flat.size() * sizeof(std::int32_t));
    kernels::mean_pool(x.raw(), x.dtype(), cols, device_ranges.data<std::int32_t>(),
                       static_cast<std::int64_t>(ranges.size()), out.data<float>(), stream_);
    return out;
  }

  Tensor cast(const Tensor& x, DType dtype) override {
    auto scope = op("cast");
    if (dtype == DType::kF8E4M3)  // the weights' quantisation (activations are quantised inside the ops)
      return quantize(x, false,
                      x.ndim() == 2 && block_scaled(x.dim(1)) ? Tensor::F8Scaling::kBlock128x128
                                                              : Tensor::F8Scaling::kRow);
    Tensor out = empty(x.shape(), dtype);
    if (dtype == x.dtype()) {
      copy(out.raw(), device_, x.raw(), device_, x.nbytes());
      return out;
    }
    kernels::cast(x.raw(), x.dtype(), out.raw(), dtype, x.numel(), stream_);
    return out;
  }

  void synchronize() {
    select();
    sync_and_check();
  }

  MemoryStats stats() const {
    return {arena_.bytes_reserved(), arena_.bytes_in_use(), arena_.cudamalloc_calls()};
  }

  void set_profiling(bool on) { profiler_.set(on); }
  void set_fp8_scales(Fp8Scales scales) { fp8_scales_ = scales; }
  Fp8Scales fp8_scales() const { return fp8_scales_; }
  std::vector<ProfileEntry> profile_report() {
    select();
    return profiler_.report();
  }

 private:
  void select() const { check(cudaSetDevice(index_), "cudaSetDevice"); }

  // Selects the device and, when profiling, brackets the op with events (RAII).
  struct OpScope {
    CudaBackend* backend;
    Profiler::Mark mark;
    OpScope(CudaBackend* b, Profiler::Mark m) : backend(b), mark(m) {}
    OpScope(const OpScope&) = delete;
    OpScope& operator=(const OpScope&) = delete;
    ~OpScope() { backend->profiler_.end(mark, backend->stream_); }
  };
  OpScope op(const std::string& name) {
    select();
    return {this, profiler_.begin(name, stream_)};
  }

  // A new tensor on this GPU, its memory from the arena.
  Tensor empty(Shape shape, DType dtype) {
    auto block = arena_.allocate(static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype));
    void* p = block.get();
    return Tensor::borrow(p, std::move(shape), dtype, device_, std::move(block));
  }

  // `t` on this GPU with element type `dtype` (small parameter tensors: biases, norms, tables).
  Tensor as(const Tensor& t, DType dtype) {
    Tensor here = t;
    if (!(t.device() == device_)) {
      here = empty(t.shape(), t.dtype());
      copy(here.raw(), device_, t.raw(), t.device(), t.nbytes());
    }
    return here.dtype() == dtype ? here : cast(here, dtype);
  }

  const std::int32_t* cu_seqlens(const PackedBatch& batch) {
    if (!(batch.cu_seqlens.device() == device_))
      throw std::invalid_argument("CUDA attention: the batch lives on " + batch.cu_seqlens.device().str() +
                                  ", not " + device_.str());
    return batch.cu_seqlens.data<std::int32_t>();
  }

  // y = x·Wᵀ as a GEMM: x [rows, in] row-major, W [out, in] (PyTorch layout), y [rows, out] of `out_type`.
  static GemmProblem linear_problem(const Tensor& x, const Tensor& weight, DType out_type) {
    const auto in = weight.dim(1), out_features = weight.dim(0);
    GemmProblem p;
    p.m = x.numel() / in, p.n = out_features, p.k = in, p.lda = in, p.ldb = in, p.ldc = out_features;
    p.trans_b = true, p.ab_type = x.dtype(), p.c_type = out_type;
    return p;
  }

  void run_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y, bool accumulate) {
    GemmProblem p = linear_problem(x, weight, y.dtype());
    p.has_bias = bias.defined(), p.accumulate = accumulate;
    const Tensor b = bias.defined() ? as(bias, y.dtype()) : Tensor{};
    gemm_->run(p, x.raw(), weight.raw(), y.raw(), b.defined() ? b.raw() : nullptr);
  }

  // An f8 product: cuBLASLt multiplies the e4m3 codes (fp32 accumulation) into a raw f16 result scaled by
  // 1/448² (so that it cannot overflow: |raw| <= in_features); one more pass applies the two row
  // scales (token, output feature) and the bias, and either writes the values, adds them to `out`
  // (residual), or quantises their GELU per row for the next f8 product.
  enum F8Output { kF8Plain, kF8Accumulate, kF8Gelu };
  Tensor linear_f8(const Tensor& x_in, const Tensor& weight, const Tensor& bias, F8Output mode,
                   Tensor* out = nullptr) {
    static constexpr float kCodeMax = 448.0f;
    const bool blocks = weight.f8_scaling() == Tensor::F8Scaling::kBlock128x128;
    const auto x_scaling = blocks ? Tensor::F8Scaling::kBlock1x128 : Tensor::F8Scaling::kRow;
    const Tensor x = x_in.dtype() == DType::kF8E4M3 ? x_in : quantize(x_in, false, x_scaling);
    if (x.f8_scaling() != x_scaling)
      throw std::invalid_argument("f8 product: x " + x.describe() + " is quantised " +
                                  (blocks ? "per row but the weight in 128x128 tiles"
                                          : "in blocks but the weight per row or in 1x128 runs") +
                                  " (VIRNUCPRO_FP8_SCALES changed after the weights were quantised?)");
    if (blocks) return linear_f8_blocks(x, weight, bias, mode, out);
    const auto in = weight.dim(1), out_features = weight.dim(0), rows = x.numel() / in;
    const DType values = out ? out->dtype() : bias.defined() ? bias.dtype() : DType::kF16;
    Tensor raw = empty({rows, out_features}, values);
    GemmProblem p = linear_problem(x, weight, values);
    p.fast_accum = fp8_fast_accum_;
    gemm_->run(p, x.raw(), weight.raw(), raw.raw(), nullptr, 1.0f / (kCodeMax * kCodeMax));
    const Tensor b = bias.defined() ? as(bias, values) : Tensor{};
    const kernels::ProductScale scale{x.row_scale().data<float>(), weight.row_scale().data<float>(),
                                      kCodeMax * kCodeMax, b.defined() ? b.raw() : nullptr};
    if (mode == kF8Gelu) return quantize(raw, true, hand_over_scaling(out_features), scale);
    Tensor& target = mode == kF8Accumulate ? *out : raw;
    kernels::scale_product(raw.raw(), values, rows, out_features, scale, target.raw(), mode == kF8Accumulate,
                           stream_);
    return target;
  }

  // A block-scaled f8 product: cuBLASLt applies both operands' block scales and writes the values; one
  // pass of ours adds the bias (and the residual), or quantises gelu(value + bias) for the next product.
  Tensor linear_f8_blocks(const Tensor& x, const Tensor& weight, const Tensor& bias, F8Output mode,
                          Tensor* out) {
    const auto in = weight.dim(1), out_features = weight.dim(0), rows = x.numel() / in;
    const DType values = out ? out->dtype() : bias.defined() ? bias.dtype() : DType::kF16;
    Tensor raw = empty({rows, out_features}, values);
    GemmProblem p = linear_problem(x, weight, values);
    p.f8_block_scales = true;
    gemm_->run(p, x.raw(), weight.raw(), raw.raw(), nullptr, 1.0f,
               {x.row_scale().data<float>(), weight.row_scale().data<float>()});
    const Tensor b = bias.defined() ? as(bias, values) : Tensor{};
    const kernels::ProductScale bias_only{nullptr, nullptr, 1.0f, b.defined() ? b.raw() : nullptr};
    if (mode == kF8Gelu) return quantize(raw, true, hand_over_scaling(out_features), bias_only);
    Tensor& target = mode == kF8Accumulate ? *out : raw;
    if (b.defined() || mode == kF8Accumulate)
      kernels::scale_product(raw.raw(), values, rows, out_features, bias_only, target.raw(),
                             mode == kF8Accumulate, stream_);
    return target;
  }

  // x [rows, cols] (f32/f16/bf16) as f8 e4m3: one scale per row, per 1×128 run or per 128×128 tile (2-D x);
  // of gelu(x) when `gelu` (rows and runs); `product` first turns a raw f8 product into its values.
  Tensor quantize(const Tensor& x, bool gelu, Tensor::F8Scaling scaling = Tensor::F8Scaling::kRow,
                  const kernels::ProductScale& product = {}) {
    const auto cols = x.dim(-1), rows = x.numel() / std::max<std::int64_t>(cols, 1);
    Tensor out = empty(x.shape(), DType::kF8E4M3);
    auto* codes = static_cast<std::uint8_t*>(out.raw());
    if (scaling == Tensor::F8Scaling::kRow) {
      Tensor scale = empty({rows}, DType::kF32);
      kernels::quantize_rows(x.raw(), x.dtype(), rows, cols, gelu, codes, scale.data<float>(), stream_,
                             product);
      return out.with_row_scale(std::move(scale));
    }
    Tensor scale = empty(f8_block_scale_shape(scaling, rows, cols), DType::kF32);
    if (scaling == Tensor::F8Scaling::kBlock1x128)
      kernels::quantize_1x128(x.raw(), x.dtype(), rows, cols, gelu, codes, scale.data<float>(), stream_,
                              product);
    else
      kernels::quantize_128x128(x.raw(), x.dtype(), rows, cols, scale.dim(1), codes, scale.data<float>(),
                                stream_);
    return out.reshape({rows, cols}).with_block_scale(std::move(scale), scaling);
  }

  // The GELU hand-over's scaling: that of the next product's activations, whose width is `cols`.
  Tensor::F8Scaling hand_over_scaling(std::int64_t cols) const {
    return block_scaled(cols) ? Tensor::F8Scaling::kBlock1x128 : Tensor::F8Scaling::kRow;
  }

  // Whether fp8 quantises a tensor whose last dimension is `cols` with block scales (Fp8Scales).
  bool block_scaled(std::int64_t cols) const {
    return fp8_scales_ == Fp8Scales::kBlock && cols % kF8Block == 0;
  }

  int* flag() { return static_cast<int*>(error_flag_.get()); }

  // Host -> device through the pinned staging buffer: `src` is copied into it and the DMA queued on the
  // stream, so the caller may release `src` at once and nothing waits for the GPU. Space is handed out
  // front to back; a copy that does not fit in what is left starts again at the front once the last
  // copy queued from the buffer has finished (staging_done_: the stream runs copies in order, so every
  // earlier one has too). The buffer grows to the largest upload, up to kMaxStagingBytes; larger ones
  // (model weights at load time), or no pinned memory at all, return false: the caller copies unstaged.
  bool upload_staged(void* dst, const void* src, std::size_t bytes) {
    static constexpr std::size_t kMinStagingBytes = std::size_t{4} << 20;
    static constexpr std::size_t kMaxStagingBytes = std::size_t{64} << 20;
    static constexpr std::size_t kAlign = 256;
    if (bytes > kMaxStagingBytes) return false;
    std::lock_guard lock(staging_mutex_);
    if (no_pinned_memory_) return false;
    std::size_t offset = (staging_used_ + kAlign - 1) / kAlign * kAlign;
    if (offset + bytes > staging_size_) {
      check(cudaEventSynchronize(staging_done_), "a CUDA copy (cudaEventSynchronize)");
      offset = 0;
      if (bytes > staging_size_) {
        if (staging_) check(cudaFreeHost(staging_), "cudaFreeHost(staging buffer)");
        staging_ = nullptr, staging_size_ = 0;
        std::size_t size = kMinStagingBytes;
        while (size < bytes) size *= 2;
        if (cudaMallocHost(&staging_, size) != cudaSuccess) {
          cudaGetLastError();  // not sticky: the unstaged path still works
          staging_ = nullptr;
          no_pinned_memory_ = true;
          return false;
        }
        staging_size_ = size;
      }
    }
    char* p = static_cast<char*>(staging_) + offset;
    std::memcpy(p, src, bytes);
    check(cudaMemcpyAsync(dst, p, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpy(host to device)");
    check(cudaEventRecord(staging_done_, stream_), "cudaEventRecord(staging)");
    staging_used_ = offset + bytes;
    return true;
  }

  void sync_and_check() {
    check(cudaStreamSynchronize(stream_), "a CUDA kernel (cudaStreamSynchronize)");
    int host_flag[2] = {0, 0};
    check(cudaMemcpyAsync(host_flag, flag(), sizeof(host_flag), cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpy(flag)");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    if (host_flag[0] != 0) {
      check(cudaMemsetAsync(flag(), 0, sizeof(host_flag), stream_), "cudaMemset(error flag)");
      throw std::out_of_range("embedding: token id " + std::to_string(host_flag[1]) +
                              " is outside the embedding table (on " + device_.str() + ")");
    }
  }

  int index_;
  Device device_;
  Arena arena_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  std::shared_ptr<void> error_flag_;
  // Hopper's fast fp8 accumulation (off by default; VIRNUCPRO_FP8_FAST_ACCUM=1 turns it on).
  bool fp8_fast_accum_ = env::get_bool("VIRNUCPRO_FP8_FAST_ACCUM").value_or(false);
  Fp8Scales fp8_scales_ = fp8_scales_from_env();
  Profiler profiler_;
  // Pinned host memory for uploads (upload_staged).
  std::mutex staging_mutex_;
  void* staging_ = nullptr;
  std::size_t staging_size_ = 0, staging_used_ = 0;
  cudaEvent_t staging_done_ = nullptr;
  bool no_pinned_memory_ = false;
};

struct DeviceState {
  int count = 0;
  std::string reason;
};

const DeviceState& device_state() {
  static const DeviceState state = [] {
    DeviceState s;
    const cudaError_t status = cudaGetDeviceCount(&s.count);
    if (status != cudaSuccess) {
      cudaGetLastError();
      s.count = 0;
      s.reason = cudaGetErrorString(status);
      // The runtime says "insufficient driver" also when there is no driver at all: tell the two apart.
      if (status == cudaErrorInsufficientDriver) {
        void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
        if (driver)
          dlclose(driver);
        else
          s.reason = "no NVIDIA driver: libcuda.so.1 not found";
      }
    } else if (s.count == 0) {
      s.reason = "the CUDA driver reports no GPU";
    }
    return s;
  }();
  return state;
}

CudaBackend& backend_object(int index) {
  // Backends live until the process ends (never destroyed: tensors in static objects may outlive main).
  static std::mutex mutex;
  static std::vector<CudaBackend*> backends;
  const DeviceState& state = device_state();
  if (state.count == 0)
    throw DeviceError("device cuda:" + std::to_string(index) + " requested, but there is no CUDA device (" +
                      state.reason + ")");
  if (index < 0 || index >= state.count)
    throw DeviceError("device cuda:" + std::to_string(index) + " requested, but this machine has " +
                      std::to_string(state.count) + " CUDA device(s)");
  std::lock_guard lock(mutex);
  if (backends.empty()) backends.resize(static_cast<std::size_t>(state.count), nullptr);
  auto& slot = backends[static_cast<std::size_t>(index)];
  if (!slot) slot = new CudaBackend(index);
  return *slot;
}

}  // namespace

int device_count() noexcept {
  return device_state().count;
}
const char* unavailable_reason() noexcept {
  return device_state().reason.c_str();
}

Backend& backend(int index) {
  return backend_object(index);
}

MemoryStats memory_stats(int index) {
  return backend_object(index).stats();
}

void synchronize(int index) {
  backend_object(index).synchronize();
}

void set_profiling(int index, bool on) {
  backend_object(index).set_profiling(on);
}

void set_fp8_scales(int index, Fp8Scales scales) {
  backend_object(index).set_fp8_scales(scales);
}

Fp8Scales fp8_scales(int index) {
  return backend_object(index).fp8_scales();
}

std::vector<ProfileEntry> profile_report(int index) {
  return backend_object(index).profile_report();
}

}  // namespace vnp::engine::cuda
