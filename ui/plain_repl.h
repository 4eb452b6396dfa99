// The plain line-based chat (pipes, --plain, or a terminal where curses cannot start).
#pragma once

#include "ui/chat_client.h"

namespace fdl::ui {

// Runs until end of input, /quit or a signal: 0, or 128 + the signal that ended it.
int run_plain(ChatClient& client);

}  // namespace fdl::ui
