// The chat's signal handling: SIGINT, SIGTERM and SIGHUP set a flag that the front ends' loops
// look at (no SA_RESTART, so a blocking read returns and the loop sees it); SIGPIPE is ignored.
#pragma once
#include <csignal>

namespace fdl::ui {

extern volatile std::sig_atomic_t g_signal;  // the last signal caught (0: none)
void install_signals();

}  // namespace fdl::ui
