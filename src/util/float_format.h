#pragma once
// Number formatting shared by every output file.
#include <string>

namespace vnp {

// Exactly `str(numpy.float32(x))`, the original tool's score format: the shortest digits that
// round-trip to the same float32, positional for 1e-4 <= |x| < 1e16 (always with a fractional part,
// "1.0"), scientific otherwise ("1e-05", "9.999999e-05", "3.4028235e+38"); "nan", "inf", "-inf".
std::string format_float32_numpy(float x);

// The shortest text that parses back to the same float32 (std::to_chars), for embedding tables.
std::string format_float32_shortest(float x);

}  // namespace vnp
