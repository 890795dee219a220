#include "util/sha256.h"

#include <openssl/evp.h>

#include <array>
#include <fstream>
#include <memory>
#include <vector>

#include "util/error.h"
#include "util/interrupt.h"

namespace vnp {
struct StreamingHash::Context {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md{EVP_MD_CTX_new(), EVP_MD_CTX_free};
};

StreamingHash::StreamingHash(Algorithm algorithm) : ctx_(std::make_unique<Context>()) {
  EVP_DigestInit_ex(ctx_->md.get(), algorithm == Algorithm::Sha1 ? EVP_sha1() : EVP_sha256(), nullptr);
}
StreamingHash::~StreamingHash() = default;
StreamingHash::StreamingHash(StreamingHash&&) noexcept = default;
StreamingHash& StreamingHash::operator=(StreamingHash&&) noexcept = default;

void StreamingHash::update(const void* data, size_t n) {
  EVP_DigestUpdate(ctx_->md.get(), data, n);
}

std::string StreamingHash::hex() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md.get(), md.data(), &len);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += digits[md[i] >> 4];
    out += digits[md[i] & 15];
  }
  return out;
}

std::string sha256_hex(const std::string& bytes) {
  StreamingHash h;
  h.update(bytes.data(), bytes.size());
  return h.hex();
}

std::string sha256_file_hex(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), "", "cannot open for reading");
  StreamingHash h;
  std::vector<char> buf(1 << 20);
  while (in) {
    check_interrupted();  // a multi-GB file takes seconds
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw InputError(path.string(), "", "read error");
  return h.hex();
}

}  // namespace vnp
