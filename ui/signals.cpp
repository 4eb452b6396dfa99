#include "ui/signals.h"

namespace fdl::ui {

volatile std::sig_atomic_t g_signal = 0;

namespace {
extern "C" void on_signal(int sig) { g_signal = sig; }
}  // namespace

void install_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

}  // namespace fdl::ui
