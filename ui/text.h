// Text helpers for the terminal: UTF-8 <-> wide strings, display widths (wcwidth), wrapping and
// truncation to a column count, and the visible form of one token. No ncurses here.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace fdl::ui {

// Decodes UTF-8; every invalid or truncated sequence becomes U+FFFD.
std::wstring utf8_to_wide(std::string_view s);
std::string wide_to_utf8(std::wstring_view s);

// Columns one character takes: wcwidth(), with utf8proc's table as a fallback where the C
// library does not know the character (e.g. a non-UTF-8 locale). Control characters: 0.
int char_width(wchar_t c);
int display_width(std::wstring_view s);
inline int display_width(std::string_view utf8) { return display_width(utf8_to_wide(utf8)); }

// The longest prefix of `s` that fits in `width` columns. With `ellipsis`, a string that does not
// fit ends in '…'. With `pad`, the result is filled with spaces to exactly `width` columns (also when
// a wide character did not fit in the last column).
std::wstring fit_width(std::wstring_view s, int width, bool ellipsis = false, bool pad = false);

// Wraps text into lines of at most `width` columns: explicit newlines kept, breaks at spaces where
// possible, words longer than a line cut. Tabs become spaces, other control characters are
// dropped. An empty text gives one empty line.
std::vector<std::wstring> wrap_text(std::wstring_view s, int width);

// The visible form of one token's raw bytes, for a block cell: spaces as '·', newline as '⏎',
// tab as '⇥', other control bytes as '¿', and each byte that is not (yet) valid UTF-8 (a piece of a
// character split across tokens) by its value, "<0xC3>", so '�' in a cell is a real U+FFFD.
std::wstring token_cell_text(std::string_view bytes);

}  // namespace fdl::ui
