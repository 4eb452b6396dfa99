// What the TUI and the plain REPL share as clients of a chat backend (the chat service on a model
// loaded here, or a remote server): the settings a prompt is answered with, where the
// conversation is saved, how each lane's tokens read, and the slash commands whose effect is the
// same in both.
#pragma once
#include <memory>
#include <string>

#include "engine/chat/chat_backend.h"
#include "ui/chat_app.h"
#include "ui/commands.h"
#include "ui/view_model.h"

namespace fdl::ui {

struct ChatClient {
    ChatAppOptions opts;
    std::unique_ptr<ChatBackend> backend;  // ChatService, or a RemoteChat (client/)
    ChatBackendInfo info;       // the backend's, at start
    Settings settings;          // at start; each front end keeps its own copy as the user changes it
    std::string session_file;   // where the conversation is saved on exit ("" = nowhere)
    std::string history_file;   // input history
    std::string saved_text;     // the conversation as the session file holds it
    TokenText lane_text[2];     // how tokens read in lane 0 (the chat model) and 1 (the AR baseline)

    // The request a prompt becomes under settings s.
    ChatRequest request(const std::string& prompt, const Settings& s) const;
    // Keeps the lane's token text (a LaneStarted event names the model answering, or, for a
    // remote lane, the server's token names).
    void on_lane_started(const ChatEvent& e);
    // Saves the conversation when it changed since start; error says why it could not.
    void save_session(std::string& error);
};

// Commands both front ends share. Returns a message; `error` says whether it is one. Sets
// `handled` false for the commands each front end handles itself (help, quit, replay).
std::string run_shared_command(ChatClient& client, Settings& settings, const Command& c, bool busy, bool& error,
                               bool& handled);

// The transcript shown for the backend's conversation (after /load, /clear, --resume).
void fill_transcript(ViewModel& vm, const ChatClient& client);

// "2 earlier messages left out of the prompt to fit the model's context (4096 positions)".
std::string left_out_text(int n, int64_t context);

// "~/x" with $HOME in front.
std::string expand_home(const std::string& path);

}  // namespace fdl::ui
