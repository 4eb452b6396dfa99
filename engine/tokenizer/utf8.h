// UTF-8 below the tokenizer: validation, repair with U+FFFD the way Rust's
// String::from_utf8_lossy does it, stepping over code points, and the character classes that
// added-token matching asks about.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fdl::tok {

// Appends to `out` the longest prefix of `in` whose fate is decided: valid characters are
// copied, each maximal invalid subpart becomes one U+FFFD (Unicode "substitution of maximal
// subparts", which is what Rust's String::from_utf8_lossy does). An incomplete but so far
// valid sequence at the very end is held back (not consumed) unless `final` is set. Returns
// the number of bytes consumed.
size_t utf8_lossy_append(std::string_view in, std::string& out, bool final);

bool is_valid_utf8(std::string_view in);

// `s` with every maximal invalid subpart replaced by U+FFFD.
std::string utf8_lossy(std::string_view s);

// Decodes the code point at s[i] (s is valid UTF-8) and advances i.
int32_t next_cp(std::string_view s, size_t& i);

// The code point that ends at s[end] (exclusive), or -1.
int32_t prev_cp(std::string_view s, size_t end, size_t* start_out = nullptr);

void append_cp(std::string& out, int32_t cp);

// Rust's char::is_whitespace (the White_Space property).
bool is_rust_whitespace(int32_t c);

// Regex \w (letters, marks, decimal digits, connector punctuation such as '_').
bool is_word_char(int32_t c);

}  // namespace fdl::tok
