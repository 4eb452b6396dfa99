// The full-screen ncurses chat.
#pragma once

#include "ui/chat_client.h"

namespace fdl::ui {

// Runs until the user quits: 0, 128 + the signal that ended it, or -1 when curses cannot start
// (the caller falls back to the plain REPL).
int run_tui(ChatClient& client);

}  // namespace fdl::ui
