#include "engine/model/load_progress.h"

#include <unistd.h>

#include <cstdio>

#include "engine/io/clock.h"

namespace fdl {

struct LoadProgressLine::State {
    std::function<void(const std::string&)> show;
    std::function<void()> finished;
    double start = now_seconds();
    bool shown = false;
    int last_pct = -1;
    std::string weights;
};

LoadProgressLine::LoadProgressLine(std::function<void(const std::string&)> show, std::function<void()> finished)
    : st_(std::make_shared<State>()) {
    st_->show = std::move(show);
    st_->finished = std::move(finished);
}

void LoadProgressLine::set_weights(const std::string& text) const { st_->weights = text; }

void LoadProgressLine::operator()(uint64_t done, uint64_t total) const {
    State& st = *st_;
    if (done >= total) {
        if (st.shown && st.finished) st.finished();
        st.shown = false;
        return;
    }
    const double s = now_seconds() - st.start;
    const int pct = int(100.0 * double(done) / double(total));
    if (s < 0.5 || pct == st.last_pct) return;
    st.last_pct = pct;
    st.shown = true;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%d%% (%.1f of %.1f GB read", pct, double(done) / 1e9, double(total) / 1e9);
    st.show(std::string(buf) + (st.weights.empty() ? "" : "; " + st.weights) + ")");
}

std::function<void(uint64_t, uint64_t)> load_progress(std::function<void(const std::string&)> show,
                                                      std::function<void()> finished) {
    return LoadProgressLine(std::move(show), std::move(finished));
}

std::function<void(uint64_t, uint64_t)> stderr_load_progress(const std::string& name) {
    if (!::isatty(STDERR_FILENO)) return {};
    return load_progress(
        [name](const std::string& text) {
            std::fprintf(stderr, "\r\033[Kloading %s: %s", name.c_str(), text.c_str());
            std::fflush(stderr);
        },
        [] { std::fputs("\r\033[K", stderr); });
}

}  // namespace fdl
