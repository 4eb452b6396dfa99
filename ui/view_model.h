// The chat screen's state, apart from drawing (btop style): plain structs and reducer functions
// fed by DecodeEvents and user actions. Nothing here touches the terminal, a thread or a file, so
// the tests drive it directly; ui/renderer draws it and ui/chat_app wires it to the engine.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/decode/decode_events.h"
#include "engine/chat/chat_service.h"
#include "engine/decode/generate.h"

namespace fdl {
class Tokenizer;
class TextStream;
}  // namespace fdl

namespace fdl::ui {

// How token ids become text: a real tokenizer, or a stand-in for tests.
struct TokenText {
    std::function<std::string(int32_t)> bytes;  // raw bytes of one token ("" for none)
    std::function<bool(int32_t)> special;       // control tokens: not part of the answer text
    std::vector<int32_t> stops;                 // a decided stop token ends the answer text
    const Tokenizer* tokenizer = nullptr;       // when set, answers stream through StreamDetokenizer

    static TokenText of(const Tokenizer& tok, std::vector<int32_t> stops);
    // A remote lane's tokens: the text the server gave for each id (engine/chat/chat_backend.h).
    static TokenText of(std::shared_ptr<const TokenNames> names);
    // Token id N reads "tN " (stops and ids >= special_from are special).
    static TokenText synthetic(std::vector<int32_t> stops = {}, int32_t special_from = 1 << 30);
};

// ---------------------------------------------------------------------------------------------
// One answer's decoding, rebuilt from its events alone.

enum class CellKind {
    Empty,    // no token there yet (AR: not generated yet; prefill: past the sequence)
    Prompt,   // a prompt token that heads the first block
    Masked,   // still |<MASK>|
    Decoded,  // decided by step `step`
};

struct Cell {
    CellKind kind = CellKind::Empty;
    int position = 0;      // absolute position in the sequence
    int32_t token = -1;
    int step = -1;         // the step (Step event of this answer, 0-based) that decided it
    float confidence = 0;  // its probability when decided
    bool latest = false;   // decided by the latest step
    std::wstring text;     // visible form of the token (ui/text.h token_cell_text)
};

// Colour slot of a step among `palette` colours (-1: no step).
inline int step_colour(int step, int palette) { return step < 0 || palette <= 0 ? -1 : step % palette; }

constexpr int kArWindow = 32;  // AR decoding shows the answer in windows of this many cells

struct BlockView {
    bool ar = false;      // AR decoding: a window of kArWindow positions, one filled per pass
    int index = -1;       // diffusion block (0-based); -1 before the first block (prefill)
    int start = 0;        // absolute position of cells[0]
    int size = 0;         // cells
    int sub_size = 0;     // sub-block size (diffusion)
    int active_sub = -1;  // sub-block the latest step worked on (-1: none)
    int steps = 0;        // forward passes spent on this block so far
    std::vector<Cell> cells;
    int count(CellKind k) const;
    int latest_count() const;
};

struct AnswerView {
    bool started = false, finished = false, cancelled = false, stopped = false;
    bool ar = false;
    int prompt_len = 0;
    int32_t mask = -1;
    int events = 0;                 // events applied
    int steps = 0;                  // Step events applied (forward passes)
    StepKind last_kind = StepKind::Prefill;
    int last_unmasked = 0;          // tokens decided by the latest step
    float last_min_conf = 0;        // smallest confidence among them
    std::vector<int32_t> gen;       // generated tokens by position - prompt_len (-1: undecided)
    std::vector<int> gen_step;      // the step that decided each
    bool stream_done = false;       // the stop token was reached
    std::string text;               // the answer so far: the contiguous decided prefix
    std::shared_ptr<TextStream> stream;
    BlockView block;
    DecodeStats stats;
    int decided() const;  // generated positions decided so far
};

void apply_event(AnswerView& a, const DecodeEvent& ev, const TokenText& tt);

// ---------------------------------------------------------------------------------------------
// Replay of the last answer's recorded event stream.

struct Replay {
    std::vector<DecodeEvent> events;  // the last answer, as recorded
    bool active = false;              // the block view shows the replay instead of the live answer
    bool playing = false;
    int pos = -1;                     // index of the last applied event
    double speed = 8;                 // events per second while playing
    double next_time = 0;
    AnswerView view;
};

void replay_record(Replay& r, const DecodeEvent& ev);  // a Started event begins a new recording
// Shows the state after event `pos` (clamped); returns false when there is nothing recorded.
bool replay_seek(Replay& r, int pos, const TokenText& tt);
bool replay_step(Replay& r, int delta, const TokenText& tt);  // enters replay at the end first
void replay_play(Replay& r, double speed, double now, const TokenText& tt);  // from the start
bool replay_tick(Replay& r, double now, const TokenText& tt);  // advances a playing replay
void replay_exit(Replay& r);

// ---------------------------------------------------------------------------------------------
// Settings, transcript and the screen as a whole.

struct Settings {
    GenerateOptions gen;
    ChatMode chat = ChatMode::Single;  // Compare: every prompt answered by the AR baseline, then diffusion
    bool compare() const { return chat == ChatMode::Compare; }
    std::string model_name;     // for the status bar
    std::string ar_model_name;  // "" until known
    int threads = 0;
    std::string weights;        // weight type in memory ("bf16", "int8", ...), "" if unknown
    std::string server;         // the server's URL when the model runs there ("" = here)
    int delay_ms = 0;           // slow motion: pause after every forward pass (figures then include it)
};

struct Entry {
    enum class Kind { User, Assistant, Info, Error };
    Kind kind = Kind::Info;
    std::string label;  // "you", the model name, ...
    std::string text;
    std::string meta;   // statistics line under an answer
    bool live = false;  // still being decoded
};

// Compare mode: the two answers to the current prompt, and running totals over the prompts
// whose two answers both finished (not cancelled, not slowed by /delay) since the settings last
// changed.
struct CompareState {
    bool have_ar = false, have_diffusion = false, slowed = false;
    DecodeStats ar, diffusion;
    std::string settings;         // settings_text of the current prompt's answers
    std::string totals_settings;  // ... and of the prompts in the totals
    int prompts = 0;
    long ar_tokens = 0, diffusion_tokens = 0;
    double ar_seconds = 0, diffusion_seconds = 0;
    // A lane's answer ended (lane 1: the AR baseline, 0: diffusion); a cancelled one is not compared.
    void record(int lane, const DecodeStats& st, bool cancelled, const Settings& s);
    void new_prompt();  // forgets the current prompt's answers, keeps the totals
};

struct ViewModel {
    Settings settings;
    std::vector<Entry> transcript;
    int scroll = 0;                 // transcript lines scrolled up from the bottom
    bool busy = false;              // a worker is answering
    int live_entry = -1;            // transcript entry the live answer streams into
    int live_lane = 0;              // 0: the chat model, 1: the AR baseline (compare mode)
    AnswerView live;
    double live_started = 0;        // clock time of the live answer's Started event
    double live_ended = 0;
    Replay replay;
    CompareState compare;
    std::string status;             // one-line message (errors, confirmations)
    bool status_error = false;
    double status_time = 0;
    bool show_help = false;
    bool quit = false;
    double ctrl_c_time = -1;        // when an idle Ctrl-C asked for confirmation
    const AnswerView& shown() const { return replay.active ? replay.view : live; }
};

void set_status(ViewModel& vm, const std::string& msg, bool error, double now);
void add_entry(ViewModel& vm, Entry::Kind kind, const std::string& label, const std::string& text);

// The user sent a prompt: adds it to the transcript; the worker is busy from now on.
void begin_answer(ViewModel& vm, const std::string& prompt, double now);
// A lane starts answering (lane 1, the AR baseline, comes first in compare mode): opens its entry.
void begin_lane(ViewModel& vm, int lane, const std::string& label, double now);
// An event of the live answer: updates the block view, the streamed text and the replay record.
void on_decode_event(ViewModel& vm, const DecodeEvent& ev, const TokenText& tt, double now);
// The lane's answer is over. `final_text` (the session's stored reply) replaces the streamed text
// when given; `error` ends it with a message instead.
void end_answer(ViewModel& vm, const std::string* final_text, const std::string& error, double now);
// All lanes are done: the worker is free again (adds the comparison line in compare mode).
void end_job(ViewModel& vm, double now);

void scroll_transcript(ViewModel& vm, int lines);  // positive: up (older)

// Text of the status bar.
std::string settings_text(const Settings& s);
// While decoding, two lines: speed_text "87 tokens · 23.4 tok/s · 2.10 tok/fwd · NFE 41 · 3.7 s" and
// cache_text "prefill 4.1 ms · prefix cache 96 (64 reused) · DualCache 30/38 passes" (the share of
// block passes that were sub-block passes over the DualCache; AR: no DualCache part).
std::string speed_text(const DecodeStats& st, double elapsed_s);
std::string cache_text(const DecodeStats& st, bool ar);
std::string live_stats_text(const DecodeStats& st, bool ar, double elapsed_s);  // both, one line
// One line per answer: "42 tokens · 123.4 tok/s · 2.10 tok/fwd · NFE 20 · prefill 3.1 ms".
std::string answer_summary(const DecodeStats& st);
// "speedup 2.31x (best case here 2.44x): diffusion 25.2 tok/s (2.40 tok/fwd, NFE 9) vs AR 10.9 tok/s
// (NFE 21), prompt included": whole-request rates (DecodeStats::request_tokens_per_second), and in
// brackets the most these settings can gain on this machine (DecodeStats::best_case_speedup,
// engine/decode/speedup_bound.h) when it is known.
std::string compare_summary(const DecodeStats& ar, const DecodeStats& diffusion);
// After a prompt: its comparison line, with the running totals from the second prompt on
// (" · 3 prompts: 0.71x"), and the prompt added to them; "" unless both answers finished.
std::string finish_compare(CompareState& c);
// "block 3 · sub 2/4 · step 5: subblock pass, 3 tokens" for the block view's title.
std::string block_title(const AnswerView& a);

// Formats a number with `digits` decimals.
std::string fmt(double v, int digits);

}  // namespace fdl::ui
