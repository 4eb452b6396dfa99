// What a chat front end talks to: requests in, ChatEvents out, and the conversation. Two
// implementations: ChatService (chat_service.h), which loads the models and decodes on this
// machine, and RemoteChat (client/remote_chat.h), which sends each request to an
// OpenAI-compatible server and turns its stream back into the same events. The TUI and the plain
// REPL see only this interface.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/chat/chat_session.h"
#include "engine/io/error.h"
#include "engine/io/files.h"
#include "engine/decode/decode_events.h"
#include "engine/decode/generate.h"

namespace fdl {

class Model;

// How a request is answered. Compare is a chat mode, not a decoder: the AR baseline answers
// first, then the chat model with diffusion, so the two can be timed side by side.
enum class ChatMode { Single, Compare };
const char* chat_mode_name(ChatMode m);  // "single", "compare"

struct ChatRequest {
    // The new user message, answered in the service's conversation and added to it.
    std::string prompt;
    // When set, answers these messages instead (system/user/assistant, the last one from the
    // user), in a conversation of their own: the service's conversation is left alone. The KV
    // cache is shared, so a conversation that continues still reuses its prefix.
    std::optional<std::vector<ChatMessage>> messages;
    // When set, a raw prompt of token ids: no chat template, no conversation (local models only).
    std::optional<std::vector<int32_t>> prompt_ids;
    ChatMode mode = ChatMode::Single;
    bool baseline = false;      // answer with compare mode's AR baseline instead of the chat model
    GenerateOptions gen;        // gen.mode picks the decoder (Compare runs AR, then diffusion)
    int step_delay_ms = 0;      // slow motion: a pause after every forward pass
    bool reuse_cache = true;    // false: forget the cached rows first (timings without reuse)
};

// How a lane's token ids read where no tokenizer is loaded (a server's answer): the text the
// server gave for each id. Filled in before any event that holds an id is sent; thread-safe.
class TokenNames {
public:
    virtual ~TokenNames() = default;
    virtual std::string bytes(int32_t id) const = 0;  // the token's bytes ("" for an unknown id)
    virtual bool special(int32_t id) const = 0;       // a control token: not part of the answer's text
    virtual std::vector<int32_t> stops() const = 0;   // ids that end an answer
};

// What a request's client hears, in this order: per lane LaneStarted, Decode events,
// LaneFinished; Info at any time; Done once at the end.
struct ChatEvent {
    enum class Kind { LaneStarted, Decode, LaneFinished, Info, Done };
    Kind kind = Kind::Info;
    uint64_t request = 0;
    int lane = 0;                   // 0: the chat model; 1: the AR baseline (compare mode)
    const Model* model = nullptr;   // LaneStarted: the model answering (lives as long as the service); null when remote
    std::shared_ptr<const TokenNames> tokens;  // LaneStarted without a model: how the lane's ids read
    DecodeEvent decode;             // Decode
    // Decode: answer text that became final with this event (never half a UTF-8 character; ""
    // for a remote lane, whose text is the server's, in LaneFinished); LaneStarted: the lane's
    // label; LaneFinished: the reply as stored; Info: the message.
    std::string text;
    std::string error;              // LaneFinished: why the lane failed ("" when it did not)
    int left_out = 0;               // LaneFinished: earlier messages left out to fit the context
    std::shared_ptr<const GenerateResult> result;  // LaneFinished: tokens, statistics, steps
    bool cancelled = false;         // LaneFinished, Done
};
using ChatEventSink = std::function<void(ChatEvent&&)>;

// A client's mailbox: give sink() to submit() and take the events on the client's own thread.
class ChatEventQueue {
public:
    ChatEventSink sink();
    std::deque<ChatEvent> take_all();
    // The next event, waiting up to timeout_s; false when none came.
    bool wait_next(ChatEvent& out, double timeout_s);
    void clear();

private:
    struct State {
        std::mutex mu;
        std::condition_variable cv;
        std::deque<ChatEvent> events;
    };
    std::shared_ptr<State> st_ = std::make_shared<State>();
};

// What a front end shows about the model behind a backend.
struct ChatBackendInfo {
    std::string name;              // the chat model's name
    bool diffusion = true;         // decodes by block diffusion unless told otherwise
    int block_size = 32;           // its diffusion block size
    int64_t context = 0;           // positions in its context (0: not known)
    std::string weights;           // weight type in memory ("bf16", ...; "" when not known)
    std::vector<int32_t> stop_ids; // its end-of-answer token ids (empty when not known)
    std::string server;            // the server's URL ("" for a model loaded here)
};

class ChatBackend {
public:
    virtual ~ChatBackend() = default;

    virtual ChatBackendInfo info() const = 0;

    // Queues a request (checked first: throws fdl::Error for invalid options). Returns its id.
    virtual uint64_t submit(ChatRequest request, ChatEventSink sink) = 0;
    // Stops a request (a queued one never starts); its client still gets LaneFinished/Done,
    // marked cancelled. Unknown or finished ids are ignored.
    virtual void cancel(uint64_t id) = 0;
    virtual void cancel_all() = 0;
    virtual bool busy() const = 0;  // a request is running or queued
    virtual void wait_idle() = 0;

    // The conversation. Changes are refused (fdl::Error) while a request is running or queued.
    virtual std::string system() const = 0;
    virtual void set_system(const std::string& text) = 0;
    virtual int history_turns() const = 0;  // earlier exchanges a new prompt keeps; -1: all
    virtual void set_history_turns(int n) = 0;
    virtual void clear() = 0;
    virtual std::vector<ChatMessage> messages() const = 0;
    // Save/load: {"format": "fastdllm-chat-1", "system", "messages": [{"role", "content"}]}.
    virtual nlohmann::json to_json() const = 0;
    virtual void from_json(const nlohmann::json& j) = 0;
    // The conversation as a saved file holds it (pretty JSON; invalid UTF-8 saved as U+FFFD).
    std::string saved_text() const;
    void save(const std::string& path) const;  // atomically; creates the folder
    void load(const std::string& path);        // throws fdl::Error naming the file
};

// The same for every backend: the file is to_json(), read back by from_json().
inline std::string ChatBackend::saved_text() const {
    return to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

inline void ChatBackend::save(const std::string& path) const {
    const std::filesystem::path p(path);
    std::error_code ec;
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
    write_file_atomic(path, saved_text());
}

inline void ChatBackend::load(const std::string& path) {
    const nlohmann::json j = read_json_file(path);
    try {
        from_json(j);
    } catch (const Error& e) {
        const std::string w = e.what();
        throw w.rfind(path, 0) == 0 ? e : file_error(path, w);
    }
}

}  // namespace fdl
