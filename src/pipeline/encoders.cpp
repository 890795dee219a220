#include "pipeline/encoders.h"

#include <algorithm>
#include <cstdint>
#include <numeric>

#include "engine/backend.h"
#include "tokenize/esm_alphabet.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

// Embeds every id list with `embed_batch` (a packed batch -> [n, width]) into rows of the result.
template <typename EmbedBatch>
std::vector<float> embed_all(const std::vector<std::vector<std::int32_t>>& ids, std::int64_t budget,
                             std::int64_t width, engine::Device device, const EmbedBatch& embed_batch) {
  std::vector<float> out(ids.size() * static_cast<std::size_t>(width));
  for (const auto& batch : pack_first_fit_decreasing(ids, budget)) {
    std::vector<std::vector<std::int32_t>> seqs;
    for (std::size_t i : batch) seqs.push_back(ids[i]);
    const auto emb =
        embed_batch(engine::PackedBatch::pack(seqs, device)).to(engine::Device::cpu()).to_floats();
    for (std::size_t r = 0; r < batch.size(); ++r)
      std::copy_n(emb.data() + r * static_cast<std::size_t>(width), width,
                  out.data() + batch[r] * static_cast<std::size_t>(width));
  }
  return out;
}

}  // namespace

std::vector<std::vector<std::size_t>> pack_first_fit_decreasing(
    const std::vector<std::vector<std::int32_t>>& ids, std::int64_t budget) {
  std::vector<std::size_t> order(ids.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return ids[a].size() > ids[b].size(); });
  std::vector<std::vector<std::size_t>> batches;
  std::vector<std::int64_t> room;
  for (std::size_t i : order) {
    const auto n = static_cast<std::int64_t>(ids[i].size());
    std::size_t b = 0;
    while (b < batches.size() && room[b] < n) ++b;
    if (b == batches.size()) {
      batches.emplace_back();
      room.push_back(budget);
    }
    batches[b].push_back(i);
    room[b] -= n;
  }
  return batches;
}

Encoders Encoders::load(const ModelPaths& paths, engine::Device device, engine::DType dtype) {
  log::info("Loading DNABERT-S from {}", paths.dnabert.string());
  auto dnabert = models::Dnabert2::load(paths.dnabert, device);
  if (!dnabert.has_tokenizer())
    throw ModelError(paths.dnabert.string(), "", "no tokenizer.json beside the DNABERT-S weights");
  check_interrupted();  // each model takes seconds to load: SIGINT/SIGTERM is honoured between them
  log::info("Loading ESM-2 from {}", paths.esm.string());
  auto esm = models::Esm2::load(paths.esm, device);
  check_interrupted();
  log::info("Loading classifier from {}", paths.classifier.string());
  auto mlp = models::MlpClassifier::load(paths.classifier);
  const std::int64_t width = dnabert.config().hidden_size + esm.config().hidden;
  if (mlp.input_dim() != width)
    throw ModelError(paths.classifier.string(), "hidden_layer.weight",
                     "classifier takes " + std::to_string(mlp.input_dim()) + " features but DNABERT-S (" +
                         std::to_string(dnabert.config().hidden_size) + ") + ESM-2 (" +
                         std::to_string(esm.config().hidden) + ") give " + std::to_string(width));
  if (dtype != engine::DType::kF32) {
    dnabert.set_compute_dtype(dtype);
    esm.set_compute_dtype(dtype);
  }
  log::info("Computing on {} in {}", device.str(), precision_description(dtype, device));
  return {std::move(dnabert), std::move(esm), std::move(mlp), dtype};
}

std::int64_t activation_bytes_per_token(std::int64_t hidden, std::int64_t ffn, engine::DType dtype) {
  // fp8 quantises only the products' inputs; the activations around them are f16.
  const auto element = static_cast<std::int64_t>(
      engine::dtype_size(dtype == engine::DType::kF8E4M3 ? engine::DType::kF16 : dtype));
  return (6 * hidden + ffn) * element + hidden * static_cast<std::int64_t>(sizeof(float));
}

std::int64_t activation_bytes_per_token(const models::Esm2& esm, engine::DType dtype) {
  return activation_bytes_per_token(esm.config().hidden, esm.config().intermediate, dtype);
}

std::int64_t activation_bytes_per_token(const models::Dnabert2& dnabert, engine::DType dtype) {
  return activation_bytes_per_token(dnabert.config().hidden_size, 2 * dnabert.config().intermediate_size,
                                    dtype);
}

std::int64_t activation_bytes_per_token(const Encoders& e) {
  return std::max(activation_bytes_per_token(e.esm, e.dtype), activation_bytes_per_token(e.dnabert, e.dtype));
}

std::int64_t token_budget_for_memory(engine::Device device, const engine::Backend::MemoryInfo& memory,
                                     std::int64_t bytes_per_token) {
  constexpr std::int64_t kMin = 4096, kMax = 65536, kStep = 1024;
  if (device.is_cpu()) return kMin;
  const auto usable = static_cast<std::int64_t>(std::min<std::uint64_t>(memory.free_bytes / 2, INT64_MAX));
  const std::int64_t tokens = usable / std::max<std::int64_t>(bytes_per_token, 1) / kStep * kStep;
  return std::clamp(tokens, kMin, kMax);
}

std::int64_t default_token_budget(engine::Device device, std::int64_t bytes_per_token) {
  const auto memory =
      device.is_cpu() ? engine::Backend::MemoryInfo{} : engine::backend_for(device).memory_info();
  const std::int64_t budget = token_budget_for_memory(device, memory, bytes_per_token);
  if (!device.is_cpu())
    log::info("{}: {} MiB of {} MiB free; {} tokens per batch ({} bytes of activations per token)",
              device.str(), memory.free_bytes >> 20, memory.total_bytes >> 20, budget, bytes_per_token);
  return budget;
}

std::int64_t default_token_budget(const std::vector<const Encoders*>& replicas) {
  std::int64_t budget = INT64_MAX;
  for (const Encoders* e : replicas)
    budget = std::min(budget, default_token_budget(e->esm.device(), activation_bytes_per_token(*e)));
  return budget;
}

std::vector<engine::Device> resolve_devices(const std::string& spec) {
  const int gpus = engine::cuda_device_count();
  std::vector<engine::Device> out;
  if (spec == "cpu" || (spec == "auto" && gpus == 0)) return {engine::Device::cpu()};
  if (spec == "auto" || spec == "cuda") {
    if (gpus == 0)
      throw DeviceError("--device " + spec + ": no CUDA device: " + engine::cuda_unavailable_reason() +
                        "; use --device cpu");
    for (int i = 0; i < gpus; ++i) out.push_back(engine::Device::cuda(i));
    return out;
  }
  if (spec.rfind("cuda:", 0) != 0 || spec.size() == 5)
    throw UsageError("--device '" + spec + "': expected auto, cpu, cuda or cuda:0,1,...");
  std::size_t pos = 5;
  while (pos <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string index = spec.substr(pos, comma - pos);
    if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos)
      throw UsageError("--device '" + spec + "': expected auto, cpu, cuda or cuda:0,1,...");
    const int i = std::stoi(index);
    if (i >= gpus)
      throw DeviceError("--device " + spec + ": no CUDA device " + index + " (" + std::to_string(gpus) +
                        " visible" + (gpus == 0 ? ": " + engine::cuda_unavailable_reason() : "") + ")");
    out.push_back(engine::Device::cuda(i));
    pos = comma + 1;
  }
  return out;
}

namespace {

// The CPU: fp32, or bf16 products (fp32 accumulation, fp32 everywhere else) where the CPU has bf16
// instructions; auto = bf16 only with AMX, where it is several times faster (SPEC §1).
engine::DType resolve_cpu_precision(const std::string& precision) {
  const engine::CpuBf16 bf16 = engine::cpu_bf16_support();
  if (precision == "auto") return bf16 == engine::CpuBf16::kAmx ? engine::DType::kBF16 : engine::DType::kF32;
  if (precision == "bf16") {
    if (bf16 == engine::CpuBf16::kNone)
      throw DeviceError(
          "--precision bf16 on the CPU needs AMX-BF16 or AVX512-BF16 instructions, and this CPU has neither "
          "(as oneDNN sees it; ONEDNN_MAX_CPU_ISA may lower it): use --precision fp32");
    return engine::DType::kBF16;
  }
  if (precision == "fp16" || precision == "fp8")
    throw UsageError("--precision " + precision + " needs a GPU; the CPU computes in fp32 or bf16");
  throw UsageError("--precision " + precision + ": not one of auto, fp32, fp16, bf16, fp8");
}

}  // namespace

std::string precision_description(engine::DType dtype, engine::Device device) {
  if (!device.is_cpu() || dtype != engine::DType::kBF16) return engine::dtype_name(dtype);
  return std::string("bf16 (") + engine::cpu_bf16_name(engine::cpu_bf16_support()) +
         " products, fp32 elsewhere)";
}

engine::DType resolve_precision(const std::string& precision, engine::Device device) {
  if (precision == "fp32") return engine::DType::kF32;
  if (device.is_cpu()) return resolve_cpu_precision(precision);
  if (precision == "auto") return engine::DType::kF16;
  if (precision == "fp16") return engine::DType::kF16;
  if (precision == "bf16") return engine::DType::kBF16;
  if (precision == "fp8") return engine::DType::kF8E4M3;  // ESM-2's products; the rest runs in f16
  throw UsageError("--precision " + precision + ": not one of auto, fp32, fp16, bf16, fp8");
}

std::vector<float> embed_dnabert(const models::Dnabert2& model, const std::vector<std::string_view>& dna,
                                 std::int64_t token_budget) {
  std::vector<std::vector<std::int32_t>> ids(dna.size());
  for (std::size_t i = 0; i < dna.size(); ++i) model.tokenizer().encode_into(dna[i], ids[i]);
  return embed_all(ids, token_budget, model.config().hidden_size, model.device(),
                   [&](const engine::PackedBatch& b) { return model.embed(b); });
}

std::vector<float> embed_esm(const models::Esm2& model, const std::vector<std::string_view>& proteins,
                             std::int64_t token_budget) {
  static const tokenize::EsmAlphabet alphabet;
  std::vector<std::vector<std::int32_t>> ids(proteins.size());
  for (std::size_t i = 0; i < proteins.size(); ++i) ids[i] = alphabet.encode(proteins[i]);
  return embed_all(ids, token_budget, model.config().hidden, model.device(),
                   [&](const engine::PackedBatch& b) { return model.embed(b); });
}

std::vector<float> join_features(const std::vector<float>& dnabert, std::int64_t dnabert_width,
                                 const std::vector<float>& esm, std::int64_t esm_width) {
  const std::size_t d = static_cast<std::size_t>(dnabert_width), e = static_cast<std::size_t>(esm_width);
  const std::size_t n = dnabert.size() / d;
  std::vector<float> out(n * (d + e));
  for (std::size_t i = 0; i < n; ++i) {
    std::copy_n(dnabert.data() + i * d, d, out.data() + i * (d + e));
    std::copy_n(esm.data() + i * e, e, out.data() + i * (d + e) + d);
  }
  return out;
}

}  // namespace vnp::pipeline
