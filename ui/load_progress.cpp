#include "ui/load_progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

namespace fdl::ui {

std::string load_progress_text(uint64_t done, uint64_t total) {
    char buf[64];
    const int pct = total > 0 ? int(100.0 * double(done) / double(total)) : 100;
    std::snprintf(buf, sizeof buf, "%d%% (%.1f of %.1f GB)", pct, double(done) / 1e9, double(total) / 1e9);
    return buf;
}

std::function<void(uint64_t, uint64_t)> stderr_load_progress(const std::string& name) {
    if (!::isatty(STDERR_FILENO)) return {};
    struct State {
        std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
        bool shown = false;
        int last_pct = -1;
    };
    auto st = std::make_shared<State>();
    return [st, name](uint64_t done, uint64_t total) {
        if (done >= total) {
            if (st->shown) std::fputs("\r\033[K", stderr);
            st->shown = false;
            return;
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - st->start).count();
        const int pct = total > 0 ? int(100.0 * double(done) / double(total)) : 0;
        if (s < 0.5 || pct == st->last_pct) return;
        st->last_pct = pct;
        st->shown = true;
        std::fprintf(stderr, "\r\033[Kloading %s: %s", name.c_str(), load_progress_text(done, total).c_str());
        std::fflush(stderr);
    };
}

}  // namespace fdl::ui
