#include "server/stop_strings.h"

#include <algorithm>

namespace fdl::server {

std::string StopStrings::push(const std::string& text) {
    if (hit_) return "";
    pending_ += text;
    // The first position where a stop string starts: whole, or cut off by the end of what has
    // come so far (it may still be completed). The answer ends at a whole one; from a cut-off
    // one on, the text is held back, since a stop string found further on does not end the
    // answer if this earlier one turns out whole (stops "\nUser:" and "User", text "a\nUser"
    // then ":": the answer is "a", however the text came in).
    for (size_t p = 0; p < pending_.size(); p++) {
        bool partial = false;
        for (const std::string& s : stops_) {
            const size_t n = std::min(s.size(), pending_.size() - p);
            if (pending_.compare(p, n, s, 0, n) != 0) continue;
            if (n == s.size()) {
                hit_ = true;
                std::string out = pending_.substr(0, p);
                pending_.clear();
                return out;
            }
            partial = true;
        }
        if (partial) {
            std::string out = pending_.substr(0, p);
            pending_.erase(0, p);
            return out;
        }
    }
    std::string out;
    out.swap(pending_);
    return out;
}

std::string StopStrings::finish() {
    if (hit_) return "";
    // What was held back never completed its stop string, but may hold a whole later one.
    size_t first = std::string::npos;
    for (const std::string& s : stops_) first = std::min(first, pending_.find(s));
    if (first != std::string::npos) {
        hit_ = true;
        pending_.resize(first);
    }
    std::string out;
    out.swap(pending_);
    return out;
}

}  // namespace fdl::server
