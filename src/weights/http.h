#pragma once
// HTTP(S) through libcurl for `models download`: HEAD without following redirects (the Hub's
// metadata lives on the redirect itself), GET into a sink with an optional Range start, proxies from
// the environment (libcurl's own http_proxy/https_proxy/no_proxy handling), connect and stall
// timeouts. Retrying is left to the caller, which knows where a transfer may resume.
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace vnp::weights::http {

struct Settings {
  long connect_timeout_s = 30;
  long stall_timeout_s = 60;  // no byte received for this long is a timeout, not a hang
  int retries = 5;            // further attempts after a transient failure
  long backoff_ms = 1000;     // wait before the first retry; doubles with each one
  // VIRNUCPRO_DOWNLOAD_TIMEOUT (seconds, both timeouts), VIRNUCPRO_DOWNLOAD_RETRIES,
  // VIRNUCPRO_DOWNLOAD_BACKOFF_MS; a value that is not a number is a UsageError.
  static Settings from_env();
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;         // names lower-cased; the last response's only
  std::string body;                                   // only for non-2xx answers (first 4 KiB)
  std::string header(const std::string& name) const;  // "" when absent
};

// A transfer that did not complete; transient ones (connection refused or dropped, timeouts,
// HTTP 429 and 5xx) are worth retrying.
class TransferError : public std::runtime_error {
 public:
  TransferError(std::string message, bool transient, bool timeout = false)
      : std::runtime_error(std::move(message)), transient_(transient), timeout_(timeout) {}
  bool transient() const { return transient_; }
  bool timeout() const { return timeout_; }

 private:
  bool transient_, timeout_;
};

// Receives the body of a 2xx answer piece by piece; `status` tells 200 (whole file) from 206.
using Sink = std::function<void(long status, const char* data, size_t size)>;
// Called while receiving: bytes of this transfer so far and its expected total (0 = unknown).
using ProgressFn = std::function<void(uint64_t now, uint64_t total)>;

class Client {
 public:
  explicit Client(Settings settings);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const Settings& settings() const { return settings_; }
  // Throws TransferError when no HTTP answer came; an HTTP error status is returned, not thrown.
  Response head(const std::string& url, const std::vector<std::string>& headers);
  // Follows redirects; sends "Range: bytes=<from>-" when from > 0.
  Response get(const std::string& url, const std::vector<std::string>& headers, uint64_t from,
               const Sink& sink, const ProgressFn& progress);

 private:
  Response perform(const std::string& url, const std::vector<std::string>& headers, bool head, uint64_t from,
                   const Sink* sink, const ProgressFn* progress);
  Settings settings_;
  void* curl_;  // CURL*
};

// An HTTP status that is worth retrying (429, 5xx).
bool transient_status(long status);
// "https://host:port" of a URL, to tell whether a redirect left the host.
std::string origin_of(const std::string& url);
// A relative Location resolved against the URL it came from.
std::string resolve_location(const std::string& base, const std::string& location);

}  // namespace vnp::weights::http
