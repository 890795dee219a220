#pragma once
// Branch-free float exp and erf that the compiler vectorizes (glibc's expf/erff are scalar calls),
// and VNP_VECTORIZE: compiles a hot loop for AVX-512, AVX2 and baseline x86-64, picked at load
// time, so one binary is fast on new CPUs and still runs on old ones.
#include <bit>
#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define VNP_VECTORIZE __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VNP_VECTORIZE
#endif

namespace vnp::engine::cpu {

// e^x within 2 ulp for x in [-87.3, 88]; below -87.3 it returns about 1e-38 instead of
// underflowing to 0 (a select there would stop GCC from vectorizing the loop; callers that need
// exact zeros, the masked softmax keys, write them). Cephes expf: x = n·ln2 + r, |r| <= ln2/2, a
// degree-6 polynomial for e^r, 2^n from the exponent bits.
[[gnu::always_inline]] inline float exp_approx(float x) {
  constexpr float kLow = -87.3f, kHigh = 88.0f;
  float xc = x < kLow ? kLow : x;
  xc = xc > kHigh ? kHigh : xc;
  float t = xc * 1.44269504088896341f;
  float half = t >= 0.0f ? 0.5f : -0.5f;
  auto n = static_cast<std::int32_t>(t + half);  // round to nearest
  float fn = static_cast<float>(n);
  float r = xc - fn * 0.693359375f + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>(static_cast<std::uint32_t>(n + 127) << 23);
}

// erf(x) with absolute error below 2e-7 (Abramowitz & Stegun 7.1.26, the same formula as
// PyTorch's vectorized CPU erf), computed with exp_approx.
[[gnu::always_inline]] inline float erf_approx(float x) {
  float a = x < 0.0f ? -x : x;
  float t = 1.0f / (1.0f + 0.3275911f * a);
  float poly =
      ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
  float y = 1.0f - poly * exp_approx(-a * a);
  return x < 0.0f ? -y : y;
}

// GELU, exact erf form: x·0.5·(1 + erf(x/√2)).
[[gnu::always_inline]] inline float gelu_erf(float x) {
  return 0.5f * x * (1.0f + erf_approx(x * 0.70710678118654752f));
}

}  // namespace vnp::engine::cpu
