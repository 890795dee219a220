#include "weights/http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <memory>

#include "util/env.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/version.h"

namespace vnp::weights::http {
namespace {

long env_number(const char* name, long fallback, long min) {
  const auto v = env::get(name);
  if (!v) return fallback;
  try {
    size_t used = 0;
    const long n = std::stol(*v, &used);
    if (used == v->size() && n >= min) return n;
  } catch (const std::exception&) {
  }
  throw UsageError(std::string(name) + "='" + *v + "': expected a whole number >= " + std::to_string(min));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// State one transfer's callbacks share.
struct Transfer {
  Response response;
  const Sink* sink = nullptr;
  const ProgressFn* progress = nullptr;
  std::exception_ptr error;  // thrown by the sink or the interrupt check; rethrown after curl returns
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::string line(data, size * count);
  if (line.starts_with("HTTP/")) {  // a new response (after a redirect or a 100 Continue)
    t.response.headers.clear();
    const auto space = line.find(' ');
    t.response.status = space == std::string::npos ? 0 : std::atol(line.c_str() + space + 1);
  } else if (const auto colon = line.find(':'); colon != std::string::npos) {
    t.response.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (t.response.status < 200 || t.response.status >= 300 || t.sink == nullptr) {
    t.response.body.append(data, std::min(n, size_t{4096} - std::min<size_t>(4096, t.response.body.size())));
    return n;
  }
  try {
    (*t.sink)(t.response.status, data, n);
  } catch (...) {
    t.error = std::current_exception();
    return 0;  // aborts the transfer
  }
  return n;
}

int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  try {
    check_interrupted();
    if (t.progress && *t.progress && t.response.status >= 200 && t.response.status < 300)
      (*t.progress)(static_cast<uint64_t>(dlnow), static_cast<uint64_t>(dltotal));
  } catch (...) {
    t.error = std::current_exception();
    return 1;
  }
  return 0;
}

bool transient_curl_error(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

// The CA certificates: CURL_CA_BUNDLE or SSL_CERT_FILE, else the first bundle of the common
// distributions. libcurl only knows the path of the system it was built on (Debian's), and the
// release runs on others too.
std::string ca_bundle() {
  for (const char* var : {"CURL_CA_BUNDLE", "SSL_CERT_FILE"})
    if (auto v = env::get(var)) return *v;
  for (const char* path : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                           "/etc/ssl/ca-bundle.pem", "/etc/pki/tls/cacert.pem", "/etc/ssl/cert.pem"}) {
    if (::access(path, R_OK) == 0) return path;
  }
  return "";
}

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

}  // namespace

Settings Settings::from_env() {
  Settings s;
  s.stall_timeout_s = env_number("VIRNUCPRO_DOWNLOAD_TIMEOUT", s.stall_timeout_s, 1);
  s.connect_timeout_s = std::min(s.connect_timeout_s, s.stall_timeout_s);
  s.retries = static_cast<int>(env_number("VIRNUCPRO_DOWNLOAD_RETRIES", s.retries, 0));
  s.backoff_ms = env_number("VIRNUCPRO_DOWNLOAD_BACKOFF_MS", s.backoff_ms, 0);
  return s;
}

std::string Response::header(const std::string& name) const {
  const auto it = headers.find(lower(name));
  return it == headers.end() ? "" : it->second;
}

bool transient_status(long status) {
  return status == 429 || (status >= 500 && status <= 599);
}

Client::Client(Settings settings) : settings_(settings) {
  static const CURLcode global = curl_global_init(CURL_GLOBAL_DEFAULT);
  curl_ = global == CURLE_OK ? curl_easy_init() : nullptr;
  if (curl_ == nullptr) throw ModelError("cannot initialise libcurl");
}

Client::~Client() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Response Client::head(const std::string& url, const std::vector<std::string>& headers) {
  return perform(url, headers, true, 0, nullptr, nullptr);
}

Response Client::get(const std::string& url, const std::vector<std::string>& headers, uint64_t from,
                     const Sink& sink, const ProgressFn& progress) {
  return perform(url, headers, false, from, &sink, &progress);
}

Response Client::perform(const std::string& url, const std::vector<std::string>& headers, bool head,
                         uint64_t from, const Sink* sink, const ProgressFn* progress) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);
  Transfer t;
  t.sink = sink;
  t.progress = progress;
  std::unique_ptr<curl_slist, SlistDeleter> list;
  for (const std::string& h : headers) list.reset(curl_slist_append(list.release(), h.c_str()));
  char errbuf[CURL_ERROR_SIZE] = "";
  const std::string user_agent = std::string("virnucpro/") + kVersion;
  const std::string range = std::to_string(from) + "-";
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent.c_str());
  static const std::string ca = ca_bundle();
  if (!ca.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(c, CURLOPT_NOBODY, head ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, head ? 0L : 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, settings_.connect_timeout_s);
  // A stall (fewer than 1 byte/s for stall_timeout_s) ends the transfer; a slow one is fine.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, settings_.stall_timeout_s);
  if (from > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  const CURLcode code = curl_easy_perform(c);
  if (t.error) std::rethrow_exception(t.error);
  if (code != CURLE_OK) {
    const std::string detail = *errbuf ? errbuf : curl_easy_strerror(code);
    throw TransferError(detail, transient_curl_error(code), code == CURLE_OPERATION_TIMEDOUT);
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  t.response.status = status;
  return t.response;
}

std::string origin_of(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  return url.substr(0, url.find('/', scheme + 3));
}

std::string resolve_location(const std::string& base, const std::string& location) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), curl_url_cleanup);
  char* out = nullptr;
  if (curl_url_set(u.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK ||
      curl_url_set(u.get(), CURLUPART_URL, location.c_str(), 0) != CURLUE_OK ||
      curl_url_get(u.get(), CURLUPART_URL, &out, 0) != CURLUE_OK) {
    return location;
  }
  std::string resolved(out);
  curl_free(out);
  return resolved;
}

}  // namespace vnp::weights::http
