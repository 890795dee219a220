// Fast loading (issue 17): zip storages are read in place in the file's mapping, and the float
// conversions run on all threads with the same bits as the engine's scalar conversion.
#include <gtest/gtest.h>

#include <cstring>

#include "engine/tensor.h"
#include "engine/thread_pool.h"
#include "test_util.h"
#include "weights/state_dict.h"
#include "weights/zip_archive.h"

namespace vnp::weights {
namespace {

TEST(FastLoading, ZipStoragesAreReadInPlace) {
  // Two tensors of different storages sit as far apart in memory as their records in the file: they
  // point into one mapping of it, not into copies.
  const auto path = test::data_path("esm2_tiny/esm2_tiny_fairesm.pt");
  const std::string image = test::read_file(path);
  ZipArchive zip(reinterpret_cast<const std::byte*>(image.data()), image.size(), path.string());
  uint64_t offset0 = 0, offset1 = 0;
  for (const ZipRecord& r : zip.records()) {
    if (r.name.ends_with("/data/0")) offset0 = r.data_offset;
    if (r.name.ends_with("/data/1")) offset1 = r.data_offset;
  }
  ASSERT_NE(offset0, 0u);
  ASSERT_NE(offset1, 0u);
  const StateDict d = load_state_dict(path);
  const Tensor& t0 = d.at("encoder.sentence_encoder.embed_tokens.weight");               // storage 0
  const Tensor& t1 = d.at("encoder.sentence_encoder.layers.0.self_attn.q_proj.weight");  // storage 1
  EXPECT_EQ(t1.data - t0.data, static_cast<std::ptrdiff_t>(offset1 - offset0));
  EXPECT_EQ(std::memcmp(t0.data, image.data() + offset0, t0.nbytes), 0);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t0.data) % 64, 0u);  // torch aligns records to 64 bytes
}

TEST(FastLoading, HalfConversionMatchesTheEngineForEveryValue) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  Tensor t{DType::F16, {65536}, reinterpret_cast<const std::byte*>(all.data()), all.size() * 2};
  const std::vector<float> got = tensor_to_float32(t);
  for (size_t i = 0; i < all.size(); ++i) {
    const float want = engine::half_to_float(all[i]);
    ASSERT_EQ(std::memcmp(&got[i], &want, 4), 0) << "half 0x" << std::hex << i;
  }
}

TEST(FastLoading, ConversionIsBitIdenticalAcrossThreadCounts) {
  // 1M values (16 chunks of the conversion grain) of each floating dtype, 1 and 2 threads.
  const size_t n = 1 << 20;
  std::vector<std::byte> bytes(n * 8);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>((i * 2654435761u) >> 13);
  for (DType dtype : {DType::F16, DType::BF16, DType::F32, DType::F64}) {
    SCOPED_TRACE(dtype_name(dtype));
    Tensor t{dtype, {static_cast<int64_t>(n)}, bytes.data(), n * dtype_size(dtype)};
    engine::set_num_threads(1);
    const std::vector<float> one = tensor_to_float32(t);
    engine::set_num_threads(2);
    std::vector<float> two(n);
    tensor_to_float32(t, two.data(), "", "");
    engine::set_num_threads(1);
    EXPECT_EQ(std::memcmp(one.data(), two.data(), n * 4), 0);
  }
}

}  // namespace
}  // namespace vnp::weights
