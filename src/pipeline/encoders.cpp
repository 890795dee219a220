#include "pipeline/encoders.h"

#include <algorithm>
#include <numeric>

#include "tokenize/esm_alphabet.h"
#include "util/error.h"
#include "util/log.h"

namespace vnp::pipeline {
namespace {

// Indices of `ids` cut into batches of at most `budget` tokens, longest first, so that batches hold
// similar lengths (a longer sequence forms a batch of its own).
std::vector<std::vector<std::size_t>> plan_batches(const std::vector<std::vector<std::int32_t>>& ids,
                                                   std::int64_t budget) {
  std::vector<std::size_t> order(ids.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return ids[a].size() > ids[b].size(); });
  std::vector<std::vector<std::size_t>> batches;
  std::int64_t used = 0;
  for (std::size_t i : order) {
    const auto n = static_cast<std::int64_t>(ids[i].size());
    if (batches.empty() || used + n > budget) {
      batches.emplace_back();
      used = 0;
    }
    batches.back().push_back(i);
    used += n;
  }
  return batches;
}

// Embeds every id list with `embed_batch` (a packed batch -> [n, width]) into rows of the result.
template <typename EmbedBatch>
std::vector<float> embed_all(const std::vector<std::vector<std::int32_t>>& ids, std::int64_t budget,
                             std::int64_t width, engine::Device device, const EmbedBatch& embed_batch) {
  std::vector<float> out(ids.size() * static_cast<std::size_t>(width));
  for (const auto& batch : plan_batches(ids, budget)) {
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

std::uint64_t count_tokens(const std::vector<std::vector<std::int32_t>>& ids) {
  std::uint64_t n = 0;
  for (const auto& s : ids) n += s.size();
  return n;
}

}  // namespace

Encoders Encoders::load(const ModelPaths& paths, engine::Device device) {
  log::info("Loading DNABERT-S from {}", paths.dnabert.string());
  auto dnabert = models::Dnabert2::load(paths.dnabert, device);
  if (!dnabert.has_tokenizer())
    throw ModelError(paths.dnabert.string(), "", "no tokenizer.json beside the DNABERT-S weights");
  log::info("Loading ESM-2 from {}", paths.esm.string());
  auto esm = models::Esm2::load(paths.esm, device);
  log::info("Loading classifier from {}", paths.classifier.string());
  auto mlp = models::MlpClassifier::load(paths.classifier);
  const std::int64_t width = dnabert.config().hidden_size + esm.config().hidden;
  if (mlp.input_dim() != width)
    throw ModelError(paths.classifier.string(), "hidden_layer.weight",
                     "classifier takes " + std::to_string(mlp.input_dim()) + " features but DNABERT-S (" +
                         std::to_string(dnabert.config().hidden_size) + ") + ESM-2 (" +
                         std::to_string(esm.config().hidden) + ") give " + std::to_string(width));
  return {std::move(dnabert), std::move(esm), std::move(mlp)};
}

engine::Device parse_device(const std::string& spec) {
  if (spec == "auto" || spec == "cpu") return engine::Device::cpu();
  if (spec == "cuda") return engine::Device::cuda(0);
  if (spec.rfind("cuda:", 0) == 0 && spec.size() > 5 &&
      spec.find_first_not_of("0123456789", 5) == std::string::npos)
    return engine::Device::cuda(std::stoi(spec.substr(5)));
  throw UsageError("--device '" + spec + "': expected auto, cpu, cuda or cuda:N");
}

std::vector<float> embed_dnabert(const models::Dnabert2& model, const std::vector<std::string_view>& dna,
                                 std::int64_t token_budget, std::uint64_t* tokens) {
  std::vector<std::vector<std::int32_t>> ids(dna.size());
  for (std::size_t i = 0; i < dna.size(); ++i) model.tokenizer().encode_into(dna[i], ids[i]);
  if (tokens) *tokens += count_tokens(ids);
  return embed_all(ids, token_budget, model.config().hidden_size, model.device(),
                   [&](const engine::PackedBatch& b) { return model.embed(b); });
}

std::vector<float> embed_esm(const models::Esm2& model, const std::vector<std::string_view>& proteins,
                             std::int64_t token_budget, std::uint64_t* tokens) {
  static const tokenize::EsmAlphabet alphabet;
  std::vector<std::vector<std::int32_t>> ids(proteins.size());
  for (std::size_t i = 0; i < proteins.size(); ++i) ids[i] = alphabet.encode(proteins[i]);
  if (tokens) *tokens += count_tokens(ids);
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
