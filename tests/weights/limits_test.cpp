// Tiny hostile checkpoints that used to crash the loader, hang it, take all memory or pass code-
// running globals (issue 15, items 2-4): each is generated here and must be one clean ModelError
// (exit 3 through the CLI), fast.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "torch_files.h"
#include "util/error.h"
#include "weights/pickle.h"
#include "weights/state_dict.h"

namespace vnp::weights {
namespace {

using namespace std::string_literals;
using namespace test_files;
namespace fs = std::filesystem;

// b'\x80\x02N' + b'\x85'*300000 + b'0N.': 300k nested tuples, popped before STOP.
std::string deep_tuple_chain() {
  return "\x80\x02N"s + std::string(300000, '\x85') + "0N.";
}

// Each of `levels` levels holds the next twice; the leaf is `leaf` (a pickle fragment).
std::string shared_dag(int levels, const std::string& leaf) {
  const std::string put = "q\x00"s, get = "h\x00"s;  // BINPUT 0, BINGET 0
  std::string p = "\x80\x02"s + leaf + put + "0";
  for (int i = 0; i < levels; ++i) p += "}(" + unicode("a") + get + unicode("b") + get + "u" + put + "0";
  return p + get + ".";
}

// Loads `content` written to `name` and returns the ModelError's one line (naming the file).
std::string model_error(const std::string& content, const std::string& name = "hostile.pth") {
  vnp::test::ScratchDir dir;
  const fs::path file = dir / name;
  vnp::test::write_file(file, content);
  try {
    StateDict d = load_state_dict(file);
    ADD_FAILURE() << "loaded " << d.size() << " tensors";
  } catch (const ModelError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    return msg;
  }
  return "";
}

size_t load_count(const std::string& content) {
  vnp::test::ScratchDir dir;
  vnp::test::write_file(dir / "m.pth", content);
  return load_state_dict(dir / "m.pth").size();
}

void copy_fixture(const std::string& folder, const fs::path& to, const std::vector<std::string>& files) {
  fs::create_directories(to);
  for (const auto& f : files) fs::copy_file(vnp::test::data_path(folder + "/" + f), to / f);
}

// ---- item 2: a deep value graph is released iteratively ----

TEST(Limits, DeepTupleChainIsReleasedIteratively) {
  const std::string deep = deep_tuple_chain();
  PickleRef v = unpickle(reinterpret_cast<const std::byte*>(deep.data()), deep.size(), nullptr, "deep.pkl");
  EXPECT_EQ(v->kind, PickleValue::Kind::None);
  // As a file (a pickle, but no torch.save magic), and as the data.pkl of a zip: no crash.
  EXPECT_NE(model_error(deep, "deep.pkl").find("not a torch.save file"), std::string::npos);
  EXPECT_EQ(load_count(torch_zip({{"data.pkl", deep}})), 0u);
}

TEST(Limits, DeepTupleChainInsideModelsIsAModelError) {
  vnp::test::ScratchDir dir;
  const std::string bin = torch_zip({{"data.pkl", deep_tuple_chain()}});
  // The classifier, ESM-2 and DNABERT-S loaders, through the CLI: exit 3, not SIGSEGV.
  vnp::test::write_file(dir / "classifier.pth", bin);
  auto r = vnp::test::run_virnucpro({"models", "inspect", (dir / "classifier.pth").string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;  // an archive of no tensors: nothing to crash on
  copy_fixture("esm2_tiny", dir / "esm", {"config.json"});
  vnp::test::write_file(dir / "esm" / "pytorch_model.bin", bin);
  vnp::test::write_file(dir / "p.faa", ">p\nMKVL\n");
  r = vnp::test::run_virnucpro(
      {"embed", "esm", (dir / "p.faa").string(), "--model", (dir / "esm").string(), "--device", "cpu"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("pytorch_model.bin"), std::string::npos) << r.err;
  copy_fixture("dnabert2_tiny", dir / "dnabert", {"config.json", "tokenizer.json"});
  vnp::test::write_file(dir / "dnabert" / "pytorch_model.bin", bin);
  vnp::test::write_file(dir / "d.fa", ">d\nACGTACGT\n");
  r = vnp::test::run_virnucpro({"embed", "dnabert", (dir / "d.fa").string(), "--model",
                                (dir / "dnabert").string(), "--device", "cpu"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("pytorch_model.bin"), std::string::npos) << r.err;
}

// ---- item 3: DAGs, stride-0 views, nested records, memory ----

TEST(Limits, SharedContainersAreWalkedOnce) {
  const auto t0 = std::chrono::steady_clock::now();
  // 60 levels of shared dicts over None: 2^60 paths, no tensor; walked once, loads empty.
  EXPECT_EQ(load_count(torch_zip({{"data.pkl", shared_dag(60, "N")}})), 0u);
  // The same over a tensor would name 2^60 tensors: refused at the first shared level.
  const std::string msg = model_error(torch_zip(
      {{"data.pkl", shared_dag(60, float_tensor("0", 1, {1}, {1}))}, {"data/0", std::string(4, '\0')}}));
  EXPECT_NE(msg.find("shared sub-tree"), std::string::npos) << msg;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // One tensor under two names (tied weights) is fine.
  const std::string tied = dict_pickle({{"a", float_tensor("0", 1, {1}, {1}) + "q\x01"s}, {"b", "h\x01"s}});
  EXPECT_EQ(load_count(torch_zip({{"data.pkl", tied}, {"data/0", std::string(4, '\0')}})), 2u);
}

TEST(Limits, ViewsRepeatingStorageElementsAreRefused) {
  const std::string one_float(4, '\0');
  auto with_view = [&](const std::vector<int64_t>& shape, const std::vector<int64_t>& stride, int64_t numel) {
    return torch_zip({{"data.pkl", dict_pickle({{"w", float_tensor("0", numel, shape, stride)}})},
                      {"data/0", std::string(static_cast<size_t>(numel) * 4, '\0')}});
  };
  // A 631-byte file whose [16384, 16384] stride-0 view of one float would be 1 GiB.
  std::string msg = model_error(with_view({16384, 16384}, {0, 0}, 1));
  EXPECT_NE(msg.find("repeat its elements"), std::string::npos) << msg;
  // Overlapping rows: [4, 4] with strides (1, 1) over 7 floats.
  msg = model_error(with_view({4, 4}, {1, 1}, 7));
  EXPECT_NE(msg.find("repeat its elements"), std::string::npos) << msg;
  // Legitimate strided views still load: a transpose, a size-1 dimension with any stride, empty.
  EXPECT_EQ(load_count(with_view({3, 2}, {1, 3}, 6)), 1u);
  EXPECT_EQ(load_count(with_view({1, 4}, {0, 1}, 4)), 1u);
  EXPECT_EQ(load_count(with_view({0, 4}, {0, 0}, 1)), 1u);
  (void)one_float;
}

TEST(Limits, NestedZipRecordsAreRefused) {
  // data/1 lies inside data/0's bytes: both listed, each CRC right; it used to be copied twice.
  const std::string pkl =
      dict_pickle({{"a", float_tensor("0", 16, {16}, {1})}, {"b", float_tensor("1", 2, {2}, {1})}});
  const std::string inner = ZipWriter::local_record("archive/data/1", std::string(8, '\1'));
  ZipWriter zip;
  zip.add("archive/data.pkl", pkl);
  const uint64_t outer = zip.add("archive/data/0", inner + std::string(64 - inner.size() % 64, '\0'));
  zip.list("archive/data/1", outer + 30 + std::string("archive/data/0").size(), std::string(8, '\1'));
  const std::string msg = model_error(zip.finish());
  EXPECT_NE(msg.find("overlaps record archive/data/0"), std::string::npos) << msg;
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// In a death-test child: 48 MB more address space than in use, then load; exits 3 on the expected
// ModelError, 1 on another one, 4 on any other exception, 0 if it loaded.
[[noreturn]] void load_with_little_memory(const fs::path& file) {
  std::ifstream status("/proc/self/status");
  std::string line;
  uint64_t vm_kb = 0;
  while (std::getline(status, line))
    if (line.rfind("VmSize:", 0) == 0) vm_kb = std::strtoull(line.c_str() + 7, nullptr, 10);
  const rlim_t bytes = (vm_kb << 10) + (48u << 20);
  const rlimit limit{bytes, bytes};
  setrlimit(RLIMIT_AS, &limit);
  try {
    (void)load_state_dict(file);
  } catch (const ModelError& e) {
    std::_Exit(std::string(e.what()).find("more host memory") != std::string::npos ? 3 : 1);
  } catch (...) {
    std::_Exit(4);
  }
  std::_Exit(0);
}

TEST(Limits, OutOfMemoryWhileReadingIsAModelError) {
  // A 40 MB storage viewed transposed must be copied; under an address-space limit that leaves room
  // for the file's mapping but not the copy, the bad_alloc becomes a ModelError (exit 3, not 4).
  vnp::test::ScratchDir dir;
  const int64_t rows = 2560, cols = 4096;  // 40 MB: above glibc's largest mmap threshold (32 MB)
  vnp::test::write_file(
      dir / "big.pth",
      torch_zip({{"data.pkl", dict_pickle({{"w", float_tensor("0", rows * cols, {cols, rows}, {1, cols})}})},
                 {"data/0", std::string(static_cast<size_t>(rows * cols) * 4, '\0')}}));
  const fs::path file = dir / "big.pth";
  EXPECT_EXIT(load_with_little_memory(file), testing::ExitedWithCode(3), "");
}
#endif

// ---- item 4: only the globals checkpoints hold ----

// The fixture classifier state dict with one more entry, "extra": the global `module.name`.
std::string classifier_naming(const std::string& module, const std::string& name) {
  auto records =
      zip_records(vnp::test::read_file(vnp::test::data_path("mlp/mlp_tiny_160x32.state_dict.pth")));
  for (auto& [record, data] : records) {
    if (record != "data.pkl") continue;
    EXPECT_EQ(data.back(), '.');
    data.insert(data.size() - 1, unicode("extra") + "c" + module + "\n" + name + "\n" + "s");
  }
  return torch_zip(records);
}

TEST(Globals, CodeRunningGlobalsAreRefusedByName) {
  // The fixture itself (and with a harmless extra global) loads: the rewrite keeps it valid.
  EXPECT_EQ(load_count(classifier_naming("collections", "OrderedDict")), 9u);
  for (const auto& [module, name] :
       std::vector<std::pair<std::string, std::string>>{{"_posixsubprocess", "fork_exec"},
                                                        {"_operator", "methodcaller"},
                                                        {"imp", "load_source"},
                                                        {"torch.hub", "load"},
                                                        {"builtins", "eval"},
                                                        {"builtins", "getattr"},
                                                        {"torch", "load"},
                                                        {"numpy", "load"},
                                                        {"torch.nn.modules.module", "_addindent"}}) {
    SCOPED_TRACE(module + "." + name);
    const std::string msg = model_error(classifier_naming(module, name));
    EXPECT_NE(msg.find("names the global " + module + "." + name + ","), std::string::npos) << msg;
  }
  // Through the CLI: exit 3, one line naming the file and the global.
  vnp::test::ScratchDir dir;
  vnp::test::write_file(dir / "c.pth", classifier_naming("_posixsubprocess", "fork_exec"));
  auto r = vnp::test::run_virnucpro({"models", "inspect", (dir / "c.pth").string()});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("c.pth"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("_posixsubprocess.fork_exec"), std::string::npos) << r.err;
}

TEST(Globals, WhatRealCheckpointsHoldIsAllowed) {
  // Every global of the fixtures (tests/data, examples/demo-models) and of fair-esm's published files.
  for (const auto& [module, name] :
       std::vector<std::pair<std::string, std::string>>{{"__main__", "MLPClassifier"},
                                                        {"collections", "OrderedDict"},
                                                        {"builtins", "set"},
                                                        {"torch", "FloatStorage"},
                                                        {"torch", "HalfStorage"},
                                                        {"torch", "LongStorage"},
                                                        {"torch._utils", "_rebuild_tensor_v2"},
                                                        {"torch._utils", "_rebuild_parameter"},
                                                        {"torch.nn.modules.batchnorm", "BatchNorm1d"},
                                                        {"torch.nn.modules.dropout", "Dropout"},
                                                        {"torch.nn.modules.linear", "Linear"},
                                                        {"argparse", "Namespace"},
                                                        {"numpy.core.multiarray", "scalar"},
                                                        {"numpy", "dtype"},
                                                        {"torch", "bfloat16"}}) {
    EXPECT_TRUE(allowed_global(module, name)) << module << "." << name;
  }
  EXPECT_FALSE(allowed_global("torch.nn.modules.linear", "os"));
  EXPECT_FALSE(allowed_global("argparse", "ArgumentParser"));
}

}  // namespace
}  // namespace vnp::weights
