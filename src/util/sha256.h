#pragma once
// SHA-256 of files and strings (run.json, the resume journal), hex-encoded.
#include <filesystem>
#include <string>

namespace vnp {

std::string sha256_hex(const std::string& bytes);
// Streams the file; throws InputError naming it when it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace vnp
