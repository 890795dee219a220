#include "util/float_format.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace vnp {
namespace {

// Shortest round-trip digits of |x| (no dot) and the decimal exponent of the first digit.
void shortest_digits(float x, std::string& digits, int& exponent) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, std::fabs(x), std::chars_format::scientific);
  std::string_view s(buf, static_cast<size_t>(res.ptr - buf));  // d[.ddd]e±XX
  const size_t e = s.find('e');
  digits.clear();
  for (char c : s.substr(0, e))
    if (c != '.') digits += c;
  exponent = std::atoi(std::string(s.substr(e + 1)).c_str());
}

// (Built with append(): GCC 12 warns falsely (-Wrestrict) on chains of std::string operator+.)
std::string positional(const std::string& digits, int exponent) {
  const int n = static_cast<int>(digits.size());
  std::string out;
  if (exponent < 0) {
    out.append("0.").append(static_cast<size_t>(-exponent - 1), '0').append(digits);
  } else if (exponent + 1 >= n) {
    out.append(digits).append(static_cast<size_t>(exponent + 1 - n), '0').append(".0");
  } else {
    const auto point = static_cast<size_t>(exponent + 1);
    out.append(digits, 0, point).append(1, '.').append(digits, point);
  }
  return out;
}

std::string scientific(const std::string& digits, int exponent) {
  std::string out(1, digits[0]);
  if (digits.size() > 1) out.append(1, '.').append(digits, 1);
  const int a = std::abs(exponent);
  out.append(exponent < 0 ? "e-" : "e+");
  if (a < 10) out.append(1, '0');
  out.append(std::to_string(a));
  return out;
}

}  // namespace

std::string format_float32_numpy(float x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
  std::string out = std::signbit(x) ? "-" : "";
  if (x == 0.0f) return out.append("0.0");
  std::string digits;
  int exponent = 0;
  shortest_digits(x, digits, exponent);
  // numpy compares in double: float32(1e-4) is just below 1e-4 and prints as "1e-04".
  const double a = std::fabs(static_cast<double>(x));
  return out.append(a >= 1e-4 && a < 1e16 ? positional(digits, exponent) : scientific(digits, exponent));
}

std::string format_float32_shortest(float x) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, res.ptr);
}

}  // namespace vnp
