#pragma once
// `virnucpro models download` (SPEC §6): ESM-2 and DNABERT-S through the Hugging Face Hub's HTTP
// protocol into the Hub's own cache layout (so discovery and Hugging Face tools share them), the
// classifiers from the original repository into ~/.cache/virnucpro/. Partial files are resumed, every
// file is verified before it takes its final name.
//
// Hub protocol (what huggingface_hub does): HEAD {endpoint}/{repo}/resolve/{revision}/{file} without
// following the redirect; X-Repo-Commit names the commit, X-Linked-Etag / X-Linked-Size (large LFS
// files, answered with a redirect to their storage) or ETag / Content-Length (small files) the blob
// and its size. An LFS ETag is the file's SHA-256, a small file's is its git blob id (SHA-1 of
// "blob <size>\0" + content). Cache: models--ORG--NAME/blobs/<etag> (while incomplete
// blobs/<etag>.incomplete), refs/<revision> holding the commit, snapshots/<commit>/<file> a relative
// symlink to ../../blobs/<etag>.
#include <cstdint>
#include <filesystem>
#include <string>

#include "weights/discovery.h"

namespace vnp::weights {

struct DownloadOptions {
  std::filesystem::path hub_cache;       // where models--ORG--NAME go (default hub_cache_dir())
  std::filesystem::path classifier_dir;  // where the classifiers go (default virnucpro_cache_dir())
  std::string revision = "main";         // of the Hub repositories
  bool progress_bar = false;             // a bar on stderr (a terminal)
};

struct DownloadResult {
  std::string source;          // the Hub repository, or the classifier's URL
  std::string revision;        // as asked for ("" for a classifier)
  std::string commit;          // what the revision resolved to ("" for a classifier)
  std::filesystem::path path;  // the snapshot folder or the classifier file
  int files = 0;               // files of the model
  uint64_t bytes_total = 0;    // their size
  uint64_t bytes_fetched = 0;  // what this run transferred (0: all were already there)
};

// The Hub endpoint: HF_ENDPOINT without a trailing '/', default https://huggingface.co.
std::string hub_endpoint();
// VIRNUCPRO_CLASSIFIER_URL, default the original repository's raw files.
std::string classifier_base_url();

// Fetches one model. Errors are one-line ModelErrors naming the repository or URL, the file and what
// to do (HTTP 401/403/404, a hash mismatch, a timeout); what was received of a large file is kept
// for the next run to resume.
DownloadResult download_model(ModelKind kind, const DownloadOptions& options);

}  // namespace vnp::weights
