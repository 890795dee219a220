// Hostile and broken files: each must be one clean ModelError naming the file, never a crash,
// a hang or a huge allocation. (CI also runs this binary under ASan/UBSan: label "parser".)
#include <gtest/gtest.h>

#include <cstring>

#include "test_util.h"
#include "util/error.h"
#include "weights/pickle.h"
#include "weights/safetensors.h"
#include "weights/state_dict.h"

namespace vnp::weights {
namespace {

using test::data_path;
namespace fs = std::filesystem;

std::string bytes_of(const fs::path& p) {
  return test::read_file(p);
}

// Loads `content` as a file and expects a one-line ModelError that names the file; returns the message.
std::string expect_model_error(const std::string& content, const std::string& name = "bad.bin") {
  test::ScratchDir dir;
  const fs::path file = dir / name;
  test::write_file(file, content);
  try {
    StateDict d = load_state_dict(file);
    ADD_FAILURE() << "loaded " << d.size() << " tensors from a bad file";
    return "";
  } catch (const ModelError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_NE(msg.find(file.string()), std::string::npos) << msg;
    return msg;
  }
}

std::string safetensors_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST(Hostile, TruncatedAtManyOffsets) {
  for (const char* f : {"esm2_tiny/model.safetensors", "mlp/mlp_tiny_160x32.state_dict.pth",
                        "mlp/mlp_tiny_160x32.cuda.pth", "mlp/mlp_tiny_160x32.legacy.pth"}) {
    SCOPED_TRACE(f);
    const std::string full = bytes_of(data_path(f));
    std::vector<size_t> cuts;
    for (size_t c = 0; c < 80; ++c) cuts.push_back(c);
    for (size_t k = 1; k < 60; ++k) cuts.push_back(full.size() * k / 60);
    for (size_t c = 1; c < 40; ++c) cuts.push_back(full.size() - c);
    for (size_t cut : cuts) {
      if (cut >= full.size()) continue;
      SCOPED_TRACE(cut);
      expect_model_error(full.substr(0, cut));
    }
  }
}

TEST(Hostile, WrongMagic) {
  EXPECT_NE(expect_model_error("GIF89a this is not a checkpoint at all").find("not a checkpoint"),
            std::string::npos);
  expect_model_error("");
  // A pickle that is not a torch.save file.
  expect_model_error(std::string("\x80\x02K\x05.", 5));
}

TEST(Hostile, SafetensorsHeaderProblems) {
  const std::string ok_tensor = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  // Header length beyond the file.
  std::string big = safetensors_file("{" + ok_tensor + "}", std::string(8, '\0'));
  big[0] = '\x7f';
  big[1] = '\x7f';
  EXPECT_NE(expect_model_error(big).find("larger than the file"), std::string::npos);
  EXPECT_NE(expect_model_error(safetensors_file("{\"a\":", "")).find("JSON"), std::string::npos);
  expect_model_error(safetensors_file("[1,2]", ""));
  // Out of range, overlapping, size mismatch, bad dtype, negative and absurd shapes.
  EXPECT_NE(expect_model_error(safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                                std::string(4, '\0')))
                .find("past the end"),
            std::string::npos);
  EXPECT_NE(expect_model_error(safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                                std::string(12, '\0')))
                .find("overlaps"),
            std::string::npos);
  EXPECT_NE(expect_model_error(safetensors_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                                                std::string(8, '\0')))
                .find("needs 12"),
            std::string::npos);
  EXPECT_NE(expect_model_error(safetensors_file(R"({"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})",
                                                std::string(8, '\0')))
                .find("unsupported dtype"),
            std::string::npos);
  expect_model_error(
      safetensors_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  expect_model_error(
      safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", std::string(8, '\0')));
  expect_model_error(
      safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", std::string(8, '\0')));
  expect_model_error(
      safetensors_file(R"({"a":{"dtype":"F32","shape":"x","data_offsets":[0,8]}})", std::string(8, '\0')));
  // A billion-by-billion tensor in an 8-byte buffer; and one whose byte size overflows 64 bits.
  EXPECT_NE(
      expect_model_error(
          safetensors_file(R"({"a":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,8]}})",
                           std::string(8, '\0')))
          .find("needs 4000000000000000000"),
      std::string::npos);
  EXPECT_NE(expect_model_error(safetensors_file(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],)"
                                                R"("data_offsets":[0,8]}})",
                                                std::string(8, '\0')))
                .find("too large"),
            std::string::npos);
  // Deeply nested JSON is a clean error too (not a stack overflow).
  expect_model_error(safetensors_file(std::string(100000, '[') + std::string(100000, ']'), ""));
}

TEST(Hostile, SafetensorsZeroSizeAndScalarAreFine) {
  test::ScratchDir dir;
  std::string data(12, '\0');
  const float two = 2.0f;
  std::memcpy(data.data() + 8, &two, 4);
  test::write_file(dir / "ok.safetensors",
                   safetensors_file(R"({"empty":{"dtype":"F16","shape":[0,5],"data_offsets":[8,8]},)"
                                    R"("s":{"dtype":"F32","shape":[],"data_offsets":[8,12]},)"
                                    R"("v":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                                    data));
  StateDict d = load_state_dict(dir / "ok.safetensors");
  EXPECT_EQ(d.at("empty").numel(), 0);
  EXPECT_EQ(d.to_float32("s"), std::vector<float>{2.0f});
  EXPECT_EQ(d.to_int64("v"), (std::vector<int64_t>{0, 0}));
  EXPECT_THROW(d.to_float32("v"), ModelError);  // integer tensor asked as float
}

TEST(Hostile, ZipWithCorruptedDataFailsItsCrc) {
  std::string z = bytes_of(data_path("mlp/mlp_tiny_160x32.state_dict.pth"));
  z[z.size() / 2] ^= 0x5a;  // inside data/0 (20 KB of 24 KB)
  expect_model_error(z);
}

// Raw pickles through the unpickler (no container needed).
void expect_pickle_error(const std::string& pickle, const std::string& fragment) {
  try {
    unpickle(reinterpret_cast<const std::byte*>(pickle.data()), pickle.size(), nullptr, "evil.pkl");
    ADD_FAILURE() << "accepted a bad pickle; expected '" << fragment << "'";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("evil.pkl"), std::string::npos) << e.what();
  }
}

TEST(Hostile, PickleNamingCodeRunningCallables) {
  using namespace std::string_literals;
  expect_pickle_error(
      "\x80\x02"
      "cos\nsystem\n"
      "X\x02\x00\x00\x00ls"
      "\x85R."s,
      "os.system");
  expect_pickle_error(
      "\x80\x02"
      "cposix\nsystem\n"
      "X\x02\x00\x00\x00ls"
      "\x85R."s,
      "posix.system");
  expect_pickle_error(
      "\x80\x02"
      "c__builtin__\neval\n"
      "X\x04\x00\x00\x00"
      "1+1"
      "\x85R."s,
      "builtins.eval");
  expect_pickle_error(
      "\x80\x04\x8c\x08"
      "builtins"
      "\x8c\x04"
      "exec"
      "\x93)R."s,
      "builtins.exec");
  expect_pickle_error(
      "\x80\x02"
      "csubprocess\nPopen\n"
      ")R."s,
      "subprocess.Popen");
  // Classes real checkpoints pickle whole are recorded (never called); any other class is refused.
  const std::string ok =
      "\x80\x02"
      "ctorch.nn.modules.linear\nLinear\n"
      "K\x07\x85R}X\x01\x00\x00\x00xK\x01sb."s;
  PickleRef v = unpickle(reinterpret_cast<const std::byte*>(ok.data()), ok.size(), nullptr, "ok.pkl");
  EXPECT_EQ(v->kind, PickleValue::Kind::Object);
  EXPECT_EQ(v->text, "torch.nn.modules.linear.Linear");
  EXPECT_EQ(v->items.at(0)->integer, 7);
  EXPECT_EQ(v->state->get("x")->integer, 1);
  expect_pickle_error(
      "\x80\x02"
      "cmypkg.mod\nThing\n"
      "K\x07\x85R."s,
      "mypkg.mod.Thing");
}

TEST(Hostile, PickleStructureAbuse) {
  using namespace std::string_literals;
  // 100k nested lists: ]]]...]  then APPEND x (100k-1)  -> too deep, cleanly.
  std::string deep = "\x80\x02"s + std::string(100000, ']') + std::string(99999, 'a') + ".";
  expect_pickle_error(deep, "deeper than");
  // 100k nested tuples via MARK ... TUPLE.
  std::string deep_tuples = "\x80\x02"s + std::string(100000, '(') + std::string(100000, 't') + ".";
  expect_pickle_error(deep_tuples, "deeper than");
  // A list that contains itself.
  expect_pickle_error(
      "\x80\x02]q\x00h\x00"
      "a."s,
      "itself");
  expect_pickle_error("\x80\x02h\x05."s, "memo slot 5");
  expect_pickle_error(
      "\x80\x02"
      "0."s,
      "empty stack");
  expect_pickle_error("\x80\x02K\x01K\x02."s, "2 values on the stack");
  expect_pickle_error(
      "\x80\x02X\xff\xff\xff\x7f"
      "abc"s,
      "declares 2147483647 bytes");
  expect_pickle_error("\x80\x02\xff."s, "opcode 0xff");
  expect_pickle_error("\x80\x02]"s, "before its STOP");
  expect_pickle_error("\x80\x02Q."s, "empty stack");
  expect_pickle_error("\x80\x02X\x01\x00\x00\x00pQ."s, "persistent id");
  expect_pickle_error("\x80\x02}K\x01u."s, "no MARK");
}

// A pickle that rebuilds a tensor of `shape` over a 10-float storage.
std::string rebuild_pickle(const std::string& size_tuple, const std::string& stride_tuple,
                           const std::string& offset) {
  using namespace std::string_literals;
  return "\x80\x02"
         "ctorch._utils\n_rebuild_tensor_v2\n"
         "("
         "(X\x07\x00\x00\x00storage"
         "ctorch\nFloatStorage\n"
         "X\x01\x00\x00\x00"
         "0"
         "X\x03\x00\x00\x00"
         "cpu"
         "K\x0at"
         "Q"s +
         offset + size_tuple + stride_tuple +
         "\x89"
         "ccollections\nOrderedDict\n)R"
         "tR."s;
}

void expect_tensor_error(const std::string& pickle, const std::string& fragment) {
  std::vector<float> storage_data(10, 1.0f);
  PersistentLoad load = [&](const PickleRef& pid) {
    auto s = std::make_shared<Storage>();
    s->dtype = *storage_dtype_of(pid->items.at(1)->text);
    s->numel = pid->items.at(4)->integer;
    s->key = pid->items.at(2)->text;
    s->data = reinterpret_cast<const std::byte*>(storage_data.data());
    return make_storage_value(s);
  };
  try {
    PickleRef root =
        unpickle(reinterpret_cast<const std::byte*>(pickle.data()), pickle.size(), load, "t.pkl");
    materialize_tensors(root, "t.pkl");
    if (fragment.empty()) return;
    ADD_FAILURE() << "accepted a bad tensor; expected '" << fragment << "'";
  } catch (const ModelError& e) {
    EXPECT_FALSE(fragment.empty()) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Hostile, TensorViewsOutsideTheirStorage) {
  using namespace std::string_literals;
  expect_tensor_error(rebuild_pickle("K\x0a\x85"s, "K\x01\x85"s, "K\x00"s), "");           // [10] fits
  expect_tensor_error(rebuild_pickle("K\x0b\x85"s, "K\x01\x85"s, "K\x00"s), "too small");  // [11]
  expect_tensor_error(rebuild_pickle("K\x0a\x85"s, "K\x01\x85"s, "K\x01"s), "too small");  // offset 1
  expect_tensor_error(rebuild_pickle("K\x05\x85"s, "K\x03\x85"s, "K\x00"s), "too small");  // stride 3
  // A billion by a billion elements.
  expect_tensor_error(
      rebuild_pickle("J\x00\xca\x9a\x3bJ\x00\xca\x9a\x3b\x86"s, "J\x00\xca\x9a\x3bK\x01\x86"s, "K\x00"s),
      "too small");
  // Shape product overflowing 64 bits.
  const std::string huge = "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x3f"s;
  expect_tensor_error(rebuild_pickle(huge + huge + "\x86"s, "K\x01K\x01\x86"s, "K\x00"s), "too large");
  expect_tensor_error(rebuild_pickle("J\xff\xff\xff\xff\x85"s, "K\x01\x85"s, "K\x00"s), "negative");
}

TEST(Hostile, ShardIndexProblems) {
  test::ScratchDir dir;
  test::write_file(dir / "model.safetensors.index.json", R"({"weight_map":{"a":"../etc/passwd"}})");
  EXPECT_THROW(load_state_dict(dir.path()), ModelError);
  test::write_file(dir / "model.safetensors.index.json",
                   R"({"weight_map":{"a":"model.safetensors.index.json"}})");
  EXPECT_THROW(load_state_dict(dir.path()), ModelError);
  test::write_file(dir / "model.safetensors.index.json", R"({"weight_map":{"a":"missing.safetensors"}})");
  EXPECT_THROW(load_state_dict(dir.path()), ModelError);
  test::write_file(dir / "model.safetensors.index.json", R"({"nothing":1})");
  EXPECT_THROW(load_state_dict(dir.path()), ModelError);
}

TEST(Shards, TwoSafetensorsShardsMerge) {
  test::ScratchDir dir;
  std::string one(4, '\0'), two(8, '\0');
  test::write_file(dir / "model-00001-of-00002.safetensors",
                   safetensors_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", one));
  test::write_file(dir / "model-00002-of-00002.safetensors",
                   safetensors_file(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", two));
  test::write_file(dir / "model.safetensors.index.json",
                   R"({"metadata":{"total_size":12},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                   R"("b":"model-00002-of-00002.safetensors"}})");
  StateDict d = load_state_dict(dir.path());
  EXPECT_EQ(d.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(d.format(), "sharded-safetensors");
  EXPECT_EQ(d.at("b").shape, std::vector<int64_t>{2});
}

}  // namespace
}  // namespace vnp::weights
