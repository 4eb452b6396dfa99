#include "app/pull_progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace fdl::cli {

using hub::human_bytes;

std::string human_duration(double s) {
    if (!(s >= 0) || s > 99 * 3600) return "--:--";
    const long t = long(s + 0.5);
    char buf[32];
    if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

namespace {

int terminal_width(FILE* f) {
    struct winsize w {};
    if (::ioctl(::fileno(f), TIOCGWINSZ, &w) == 0 && w.ws_col >= 20) return w.ws_col;
    return 80;
}

// A file name cut to `width` columns (names are ASCII on the hub's model repositories).
std::string fit(const std::string& s, size_t width) {
    if (s.size() <= width) return s + std::string(width - s.size(), ' ');
    return s.substr(0, width - 2) + "..";
}

}  // namespace

PullProgress::PullProgress(std::string repo, FILE* out) : repo_(std::move(repo)), out_(out) {
    const char* term = std::getenv("TERM");
    tty_ = ::isatty(::fileno(out)) && !(term && std::strcmp(term, "dumb") == 0);
    start_ = last_draw_ = Clock::now();
}

double PullProgress::seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void PullProgress::planned(const std::vector<hub::RemoteFile>& files, const std::string& commit) {
    files_ = int(files.size());
    int cached = 0;
    for (const hub::RemoteFile& f : files) {
        total_ += f.size;
        if (f.present) done_ += f.size, cached++;
    }
    std::string line = "pulling " + repo_ + " (commit " + commit.substr(0, 12) + "): " + std::to_string(files_) + " files, " +
                       human_bytes(total_);
    if (cached) line += ", " + std::to_string(cached) + " already in the cache";
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
}

void PullProgress::sample() {
    const auto now = Clock::now();
    samples_.emplace_back(now, received_);
    while (samples_.size() > 2 && now - samples_.front().first > std::chrono::seconds(5)) samples_.pop_front();
}

double PullProgress::rate() const {
    if (samples_.size() < 2) return 0;
    const double dt = std::chrono::duration<double>(samples_.back().first - samples_.front().first).count();
    return dt > 0.2 ? double(samples_.back().second - samples_.front().second) / dt : 0;
}

void PullProgress::file_started(const hub::RemoteFile& f, uint64_t from) {
    current_ = f;
    have_ = from;
    state_ = from ? "resuming" : "";
    file_start_ = Clock::now();
    file_received_ = received_;
    draw(true);
}

void PullProgress::file_progress(const hub::RemoteFile&, uint64_t have) {
    if (have > have_) received_ += have - have_;
    have_ = have;
    state_.clear();
    draw(false);
}

void PullProgress::file_verifying(const hub::RemoteFile&) {
    state_ = "verifying";
    draw(true);
}

void PullProgress::file_finished(const hub::RemoteFile& f, bool downloaded) {
    if (!f.present) done_ += f.size;
    finished_files_++;
    std::string line = "  " + f.name + "  " + human_bytes(f.size);
    if (!downloaded) {
        line += "  in the cache";
    } else if (f.name == current_.name) {
        const double s = std::chrono::duration<double>(Clock::now() - file_start_).count();
        line += "  downloaded in " + human_duration(s);
        if (s > 0.05) line += " (" + human_bytes(uint64_t(double(received_ - file_received_) / s)) + "/s)";
    } else {
        line += "  downloaded";
    }
    if (tty_ && drawn_) std::fprintf(out_, "\r\033[K%s\n\033[K", line.c_str());  // then on the overall line, cleared
    else std::fprintf(out_, "%s\n", line.c_str());
    drawn_ = false;
    current_ = {};
    std::fflush(out_);
}

void PullProgress::note(const std::string& line) {
    clear();
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
    draw(true);
}

void PullProgress::clear() {
    if (tty_ && drawn_) std::fprintf(out_, "\r\033[K\n\033[K\r\033[A");
    drawn_ = false;
    std::fflush(out_);
}

std::string PullProgress::bar_line(const std::string& label, uint64_t have, uint64_t total, const std::string& state,
                                   int width) const {
    have = std::min(have, total);
    const double r = rate();
    std::string tail = "  " + human_bytes(have) + " / " + human_bytes(total);
    if (!state.empty()) tail += "  " + state;
    else if (r > 0) tail += "  " + human_bytes(uint64_t(r)) + "/s  " + human_duration(double(total - have) / r) + " left";
    std::string line = label;
    const int bar = width - int(line.size() + tail.size()) - 9;
    if (bar >= 10) {
        const int fill = total ? int(double(bar) * double(have) / double(total)) : bar;
        char pct[8];
        std::snprintf(pct, sizeof pct, " %3d%%", total ? int(100.0 * double(have) / double(total)) : 100);
        line += " [" + std::string(size_t(fill), '#') + std::string(size_t(bar - fill), '-') + "]" + pct;
    }
    line += tail;
    if (int(line.size()) >= width) line.resize(size_t(width - 1));
    return line;
}

void PullProgress::draw(bool force) {
    if (!tty_ || current_.name.empty()) return;
    const auto now = Clock::now();
    if (!force && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    sample();
    const int width = terminal_width(out_);
    const std::string file = bar_line("  " + fit(current_.name, 28), have_, current_.size, state_, width);
    const std::string files = "total " + std::to_string(finished_files_ + 1) + "/" + std::to_string(files_);
    const std::string total = bar_line("  " + fit(files, 28), done_ + have_, total_, "", width);
    // The file's line, the overall line below it, and the cursor back at the start of the first.
    std::fprintf(out_, "\r\033[K%s\n\033[K%s\r\033[A", file.c_str(), total.c_str());
    std::fflush(out_);
    drawn_ = true;
}

}  // namespace fdl::cli
