// A server's streamed answer turned back into the DecodeEvents a local decoder emits, so the
// chat's views (the answer's text, the block view, the statistics) work unchanged on a remote
// model. Two kinds of stream:
//   - fastdllm serve with stream_options.include_steps: one "step" chunk per forward pass (its
//     kind, the cells it decided with their token ids, confidences and text, the current block)
//     and text deltas; each step becomes a Step event (a BlockStarted first when the block
//     changes), and the usage/timings chunk at the end the Finished event's statistics;
//   - any other OpenAI-compatible stream (text deltas only): each delta becomes one AR-style
//     step deciding one made-up token whose text is that delta.
// No sockets here: the tests replay recorded streams through it.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/chat/chat_backend.h"
#include "engine/decode/decode_events.h"

namespace fdl::client {

// The masked cell of a remote block: an id no tokenizer has (the view tells masked cells by id).
constexpr int32_t kRemoteMask = INT32_MAX;
// Made-up token ids (a text delta of a stream without steps; a cell whose text is not whole) start here.
constexpr int32_t kFirstTextId = 1 << 30;

// What the server said each token id reads as. A token that holds part of a UTF-8 character
// comes as U+FFFD (JSON strings are valid UTF-8); such a cell of an answer gets an id of its own
// (add_cell), whose bytes are found from the answer's text once the character is complete.
class RemoteTokens : public TokenNames {
public:
    std::string bytes(int32_t id) const override;
    bool special(int32_t id) const override;
    std::vector<int32_t> stops() const override;

    void set_stops(std::vector<int32_t> ids);
    void set(int32_t id, const std::string& text);    // a token id as the server sent it
    int32_t add_text(const std::string& text);        // a made-up id for a text delta
    int32_t add_cell(const std::string& sent);        // a made-up id for one cell whose text is not whole yet
    void resolve(int32_t id, std::string bytes);      // that cell's bytes
    void leave_out(int32_t id);                       // that cell is not part of the text (the server's has it not)
    bool known(int32_t id) const;
    bool exact(int32_t id) const;  // known with its exact bytes

private:
    struct Entry {
        std::string text;
        bool exact = false;
        bool special = false;
    };
    mutable std::mutex mu_;
    std::unordered_map<int32_t, Entry> map_;
    std::vector<int32_t> stops_;
    int32_t next_id_ = kFirstTextId;
};

// Splits a server-sent event stream into its events' data (multi-line data joined by "\n");
// comments and other fields are skipped.
class SseReader {
public:
    // Calls on_event(event name, data) for each complete event in what has arrived so far.
    void feed(const char* data, size_t n, const std::function<void(const std::string&, const std::string&)>& on_event);

private:
    std::string buf_, data_, event_;
    bool has_data_ = false;
};

class AnswerStream {
public:
    using Emit = std::function<void(const DecodeEvent&)>;
    // `started`: the clock (seconds) when the request was sent.
    AnswerStream(std::shared_ptr<RemoteTokens> tokens, Emit emit, double started);

    // One event's data as it arrived at `now`: a chunk's JSON, or "[DONE]".
    void on_data(const std::string& data, double now);
    void on_chunk(const nlohmann::json& chunk, double now);
    // The stream ended (or was cut): emits what is held back and the Finished event.
    void finish(bool cancelled, double now);

    const std::string& content() const { return content_; }  // the answer's text, as the server sent it
    const std::string& error() const { return error_; }      // an error object's message
    const std::string& finish_reason() const { return finish_reason_; }
    bool streamed_steps() const { return steps_; }
    const DecodeStats& stats() const { return stats_; }
    std::vector<int32_t> tokens() const;  // the generated ids up to the first undecided cell
    bool done() const { return done_; }   // [DONE] came

private:
    struct Held {
        DecodeEvent ev;
        size_t upto = 0;  // generated cells in order that the view reads as text after it
    };
    std::shared_ptr<RemoteTokens> tokens_;
    Emit emit_;
    double t_request_ = 0, t_decode0_ = -1;
    bool started_ = false, steps_ = false, plain_ = false, done_ = false, finished_ = false;
    bool repair_off_ = false;   // the cells stopped matching the server's text: show them as sent
    bool ended_ = false;        // the stream is over: the server's text is whole
    DecodeMode decoder_ = DecodeMode::AR;
    int prompt_len_ = 0, block_size_ = 0, sub_block_size_ = 0, block_index_ = -1;
    DecodeStats stats_;
    std::string content_, error_, finish_reason_;
    nlohmann::json usage_, timings_;
    std::vector<int32_t> gen_;  // generated cells by index (position - prompt length) as the events name them; -1 undecided
    std::vector<int32_t> real_;  // ... and as the server named them
    std::unordered_map<int, int32_t> cell_id_;  // generated index -> its own id (a cell sent with U+FFFD)
    size_t settled_ = 0;        // cells matched with the content
    size_t settled_bytes_ = 0;  // ... and the content's bytes they account for
    size_t readable_ = 0;       // cells from the first whose text the view can read so far
    std::deque<Held> held_;
    std::vector<int32_t> stops_cache_;

    void start(DecodeMode decoder, int prompt_len, int block_size, int sub_block_size, double now);
    void on_step(const nlohmann::json& s, double now);
    void on_text(const std::string& delta, double now);
    size_t readable_upto();        // cells from the first whose text the view can read
    size_t text_upto() const;      // cells the view's text covers (up to the first undecided or stop)
    void settle();
    bool learn_run(const std::vector<size_t>& cells, const std::string& s);
    void release(bool all);
    bool is_stop(int32_t id) const;
};

}  // namespace fdl::client
