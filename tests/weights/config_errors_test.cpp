// Wrongly typed model JSON (config.json, tokenizer.json) and out-of-range layer indices in tensor
// names (issue 15, item 12): exit 3 with the file, the key and the problem, never a raw library
// message with exit 1. Runs the real binary on fixture folders with one thing changed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "weights/safetensors.h"

namespace vnp {
namespace {

namespace fs = std::filesystem;

// A copy of tests/data/<folder> (the named files) in `dir`/model.
fs::path copy_model(const test::ScratchDir& dir, const std::string& folder,
                    const std::vector<std::string>& files) {
  const fs::path to = dir / "model";
  fs::create_directories(to);
  for (const auto& f : files) fs::copy_file(test::data_path(folder + "/" + f), to / f);
  return to;
}

void edit_json(const fs::path& file, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(test::read_file(file));
  edit(j);
  test::write_file(file, j.dump());
}

test::RunResult embed(const test::ScratchDir& dir, const std::string& kind, const fs::path& model) {
  const fs::path input = dir / "in.fa";
  test::write_file(input, kind == "esm" ? ">p\nMKVLA\n" : ">d\nACGTACGTAC\n");
  return test::run_virnucpro({"embed", kind, input.string(), "--model", model.string(), "--device", "cpu"});
}

void expect_model_error(const test::RunResult& r, const std::vector<std::string>& fragments) {
  EXPECT_EQ(r.exit_code, 3) << r.err;
  const std::string error = r.err_without_log();
  EXPECT_EQ(error.find('\n'), error.size() - 1) << r.err;  // one line
  for (const auto& f : fragments) EXPECT_NE(r.err.find(f), std::string::npos) << f << " in: " << r.err;
}

TEST(ConfigErrors, EsmConfigKeysOfTheWrongType) {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {{"token_dropout", "yes"},
                                                                     {"position_embedding_type", 7},
                                                                     {"emb_layer_norm_before", "no"},
                                                                     {"hidden_size", "64"}};
  for (const auto& [key, value] : cases) {
    SCOPED_TRACE(key);
    test::ScratchDir dir;
    const fs::path model = copy_model(dir, "esm2_tiny", {"config.json", "model.safetensors"});
    edit_json(model / "config.json", [&](nlohmann::json& j) { j[key] = value; });
    expect_model_error(embed(dir, "esm", model), {"config.json", "'" + key + "'"});
  }
}

TEST(ConfigErrors, TokenizerFieldsOfTheWrongType) {
  const std::vector<std::pair<std::string, std::function<void(nlohmann::json&)>>> cases = {
      {"added_tokens[0]", [](nlohmann::json& j) { j["added_tokens"][0]["content"] = 5; }},
      {"added_tokens[1]", [](nlohmann::json& j) { j["added_tokens"][1] = "[PAD]"; }},
      {"lstrip", [](nlohmann::json& j) { j["added_tokens"][0]["lstrip"] = "no"; }},
      {"model.type", [](nlohmann::json& j) { j["model"]["type"] = 7; }}};
  for (const auto& [field, edit] : cases) {
    SCOPED_TRACE(field);
    test::ScratchDir dir;
    const fs::path model =
        copy_model(dir, "dnabert2_tiny", {"config.json", "pytorch_model.bin", "tokenizer.json"});
    edit_json(model / "tokenizer.json", edit);
    expect_model_error(embed(dir, "dnabert", model), {"tokenizer.json", field});
  }
}

TEST(ConfigErrors, DnabertConfigSizeOutOfRange) {
  test::ScratchDir dir;
  const fs::path model =
      copy_model(dir, "dnabert2_tiny", {"config.json", "pytorch_model.bin", "tokenizer.json"});
  edit_json(model / "config.json", [](nlohmann::json& j) { j["intermediate_size"] = 1000000000000000LL; });
  expect_model_error(embed(dir, "dnabert", model), {"config.json", "intermediate_size"});
}

TEST(ConfigErrors, LayerIndexBeyondIntNamesTheTensor) {
  // esm2_tiny's tensors plus one named layers.99999999999999.fc1.bias (std::stoi used to throw).
  test::ScratchDir dir;
  const fs::path model = copy_model(dir, "esm2_tiny", {"config.json"});
  const std::string original = test::read_file(test::data_path("esm2_tiny/model.safetensors"));
  const auto header = weights::parse_safetensors_header(reinterpret_cast<const std::byte*>(original.data()),
                                                        original.size(), "fixture");
  nlohmann::json j = nlohmann::json::parse(original.substr(8, header.data_start - 8));
  const uint64_t data_bytes = original.size() - header.data_start;
  j["layers.99999999999999.fc1.bias"] = {
      {"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {data_bytes, data_bytes + 4}}};
  const std::string text = j.dump();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  test::write_file(model / "model.safetensors",
                   out + text + original.substr(header.data_start) + std::string(4, '\0'));
  expect_model_error(embed(dir, "esm", model), {"model.safetensors", "layers.99999999999999.fc1.bias"});
}

}  // namespace
}  // namespace vnp
