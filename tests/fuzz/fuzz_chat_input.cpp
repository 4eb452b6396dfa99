// What a user types into the chat: slash-command parsing and settings changes (ui/commands.h),
// and the terminal text helpers every line and token goes through (ui/text.h), on arbitrary
// bytes (invalid UTF-8 included). Byte 0 is a column width.
#include <cstdint>
#include <string>

#include "engine/io/error.h"
#include "fuzz_util.h"
#include "ui/commands.h"
#include "ui/text.h"

using namespace fdl::ui;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const int width = int(data[0] % 90) - 2;  // includes 0 and negative widths
    const std::string line(reinterpret_cast<const char*>(data + 1), size - 1);

    const Command c = parse_command(line);
    if (is_setting(c.kind)) {
        Settings s;
        const Settings before = s;
        std::string msg;
        if (!apply_setting(s, c, msg)) FUZZ_CHECK(s.gen.block_size == before.gen.block_size && s.gen.threshold == before.gen.threshold);
        else s.gen.validate();
    }

    const std::wstring w = utf8_to_wide(line);
    const std::string u = wide_to_utf8(w);
    FUZZ_CHECK(utf8_to_wide(u) == w);
    (void)display_width(w);
    const std::wstring fit = fit_width(w, width, data[0] & 1, data[0] & 2);
    if (width >= 0) FUZZ_CHECK(display_width(fit) <= width);
    // Every wrapped line fits, except a lone character wider than the whole line (a double-width
    // character at width 1), which gets a line of its own.
    if (width >= 1)
        for (const std::wstring& l : wrap_text(w, width)) {
            int visible = 0;
            for (wchar_t ch : l) visible += char_width(ch) > 0;
            FUZZ_CHECK(display_width(l) <= width || visible == 1);
        }
    (void)token_cell_text(line);
    return 0;
}
