// What `fastdllm pull` shows while it downloads. On a terminal: the current file's line and an
// overall line below it, both redrawn in place (bytes, a bar, rate, time left); a finished file
// leaves one line. Elsewhere (a pipe, a log): only the line of each finished file.
#pragma once
#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <utility>

#include "hub/pull.h"

namespace fdl::cli {

std::string human_duration(double seconds);  // "0:41", "1:02:03"

class PullProgress : public hub::PullObserver {
public:
    explicit PullProgress(std::string repo, FILE* out = stderr);
    void planned(const std::vector<hub::RemoteFile>& files, const std::string& commit) override;
    void file_started(const hub::RemoteFile& f, uint64_t from) override;
    void file_progress(const hub::RemoteFile& f, uint64_t have) override;
    void file_verifying(const hub::RemoteFile& f) override;
    void file_finished(const hub::RemoteFile& f, bool downloaded) override;
    void note(const std::string& line) override;
    void clear();  // removes the lines being redrawn (before an error or the summary)
    double seconds() const;

private:
    using Clock = std::chrono::steady_clock;
    std::string repo_;
    FILE* out_;
    bool tty_;
    bool drawn_ = false;
    uint64_t total_ = 0, done_ = 0, have_ = 0, received_ = 0, file_received_ = 0;  // done_: bytes of the files finished or cached
    int files_ = 0, finished_files_ = 0;
    hub::RemoteFile current_;
    std::string state_;  // "resuming", "verifying" or empty
    Clock::time_point start_, file_start_, last_draw_;
    std::deque<std::pair<Clock::time_point, uint64_t>> samples_;  // (time, bytes received) of the last seconds

    double rate() const;  // bytes per second over the last few seconds
    void sample();
    void draw(bool force);
    std::string bar_line(const std::string& label, uint64_t have, uint64_t total, const std::string& state, int width) const;
};

}  // namespace fdl::cli
