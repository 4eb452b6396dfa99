#include "ui/view_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/decode/text_stream.h"
#include "engine/tokenizer/tokenizer.h"
#include "ui/text.h"

namespace fdl::ui {

TokenText TokenText::of(const Tokenizer& tok, std::vector<int32_t> stops) {
    TokenText t;
    const Tokenizer* p = &tok;
    t.bytes = [p](int32_t id) { return p->token_bytes(id); };
    t.special = [p](int32_t id) { return !p->has_token(id) || p->is_special(id); };
    t.stops = std::move(stops);
    t.tokenizer = p;
    return t;
}

TokenText TokenText::of(std::shared_ptr<const TokenNames> names) {
    TokenText t;
    t.stops = names->stops();
    t.bytes = [names](int32_t id) { return names->bytes(id); };
    t.special = [names](int32_t id) { return names->special(id); };
    return t;
}

TokenText TokenText::synthetic(std::vector<int32_t> stops, int32_t special_from) {
    TokenText t;
    t.bytes = [](int32_t id) {  // appended, not "t" + ...: GCC 12 warns falsely (-Wrestrict) on that form
        std::string s = "t";
        s += std::to_string(id);
        s += ' ';
        return s;
    };
    t.special = [stops, special_from](int32_t id) {
        return id >= special_from || std::find(stops.begin(), stops.end(), id) != stops.end();
    };
    t.stops = std::move(stops);
    return t;
}

std::string fmt(double v, int digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

// ---------------------------------------------------------------------------------------------

int BlockView::count(CellKind k) const {
    int n = 0;
    for (auto& c : cells) n += c.kind == k;
    return n;
}

int BlockView::latest_count() const {
    int n = 0;
    for (auto& c : cells) n += c.latest;
    return n;
}

int AnswerView::decided() const {
    int n = 0;
    for (int32_t t : gen) n += t >= 0;
    return n;
}

namespace {

void set_gen(AnswerView& a, int pos, int32_t tok, int step) {
    const int i = pos - a.prompt_len;
    if (i < 0) return;
    if (size_t(i) >= a.gen.size()) {
        a.gen.resize(size_t(i) + 1, -1);
        a.gen_step.resize(size_t(i) + 1, -1);
    }
    a.gen[size_t(i)] = tok;
    a.gen_step[size_t(i)] = step;
}

Cell make_cell(const AnswerView& a, int pos, int32_t tok, const TokenText& tt) {
    Cell c;
    c.position = pos;
    c.token = tok;
    if (tok < 0) {
        c.kind = CellKind::Empty;
        return c;
    }
    if (pos < a.prompt_len) {
        c.kind = CellKind::Prompt;
    } else if (tok == a.mask) {
        c.kind = CellKind::Masked;
        return c;
    } else {
        c.kind = CellKind::Decoded;
        const int i = pos - a.prompt_len;
        if (size_t(i) < a.gen_step.size()) c.step = a.gen_step[size_t(i)];
        c.latest = c.step >= 0 && c.step == a.steps - 1 && a.last_unmasked > 0;
    }
    c.text = token_cell_text(tt.bytes ? tt.bytes(tok) : std::string());
    return c;
}

void fill_confidences(AnswerView& a, const DecodeEvent& ev) {
    for (auto& u : ev.unmasked)
        for (auto& c : a.block.cells)
            if (c.position == u.position) c.confidence = u.confidence;
}

// The diffusion block view: cells of the event's block (the decoder's own snapshot).
void rebuild_block(AnswerView& a, const DecodeEvent& ev, const TokenText& tt) {
    BlockView& b = a.block;
    b.ar = false;
    b.start = ev.block_start;
    b.size = std::max(ev.block_size, int(ev.block.size()));
    b.sub_size = ev.sub_block_size;
    std::vector<Cell> old = std::move(b.cells);
    b.cells.clear();
    for (int i = 0; i < b.size; i++) {
        const int32_t tok = size_t(i) < ev.block.size() ? ev.block[size_t(i)] : -1;
        Cell c = make_cell(a, b.start + i, tok, tt);
        // keep the confidence a cell was decided with
        for (auto& o : old)
            if (o.position == c.position && o.token == c.token) c.confidence = o.confidence;
        b.cells.push_back(std::move(c));
    }
}

// The AR view: a window of kArWindow generated positions around the newest token.
void rebuild_ar_window(AnswerView& a, const TokenText& tt) {
    BlockView& b = a.block;
    b.ar = true;
    b.sub_size = 0;
    b.size = kArWindow;
    const int newest = std::max(0, int(a.gen.size()) - 1);
    const int w = newest / kArWindow;
    b.index = w;
    b.start = a.prompt_len + w * kArWindow;
    std::vector<Cell> old = std::move(b.cells);
    b.cells.clear();
    for (int i = 0; i < kArWindow; i++) {
        const int gi = w * kArWindow + i;
        const int32_t tok = size_t(gi) < a.gen.size() ? a.gen[size_t(gi)] : -1;
        Cell c = make_cell(a, b.start + i, tok, tt);
        for (auto& o : old)
            if (o.position == c.position && o.token == c.token) c.confidence = o.confidence;
        b.cells.push_back(std::move(c));
    }
}

// The answer's text through the engine's TextStream (the contiguous decided prefix, cut at the
// stop token); without a tokenizer, tokens read as TokenText gives them.
void stream_text(AnswerView& a, const DecodeEvent& ev, const TokenText& tt) {
    if (!a.stream) {
        std::function<std::string(int32_t)> piece;
        if (!tt.tokenizer)
            piece = [tt](int32_t t) { return (tt.special && tt.special(t)) || !tt.bytes ? std::string() : tt.bytes(t); };
        a.stream = std::make_shared<TextStream>(tt.tokenizer, tt.stops, std::move(piece));
    }
    a.text += a.stream->on_event(ev);
    a.stream_done = a.stream->stopped();
}

}  // namespace

void apply_event(AnswerView& a, const DecodeEvent& ev, const TokenText& tt) {
    using T = DecodeEvent::Type;
    if (ev.type == T::Started) {
        a = AnswerView{};
        a.started = true;
        a.ar = ev.decoder == DecodeMode::AR;
        a.prompt_len = ev.prompt_len;
        a.mask = ev.mask_token;
        a.stats = ev.stats;
        a.events = 1;
        stream_text(a, ev, tt);
        a.block.ar = a.ar;
        if (a.ar) rebuild_ar_window(a, tt);
        return;
    }
    a.events++;
    a.stats = ev.stats;
    switch (ev.type) {
        case T::BlockStarted:
            a.block.index = ev.block_index;
            a.block.steps = 0;
            a.block.active_sub = 0;
            a.last_unmasked = 0;  // nothing of the new block is "latest" yet
            rebuild_block(a, ev, tt);
            break;
        case T::Step: {
            const int s = a.steps++;
            a.last_kind = ev.step;
            a.last_unmasked = int(ev.unmasked.size());
            a.last_min_conf = 1;
            for (auto& u : ev.unmasked) {
                set_gen(a, u.position, u.token, s);
                a.last_min_conf = std::min(a.last_min_conf, u.confidence);
            }
            if (ev.unmasked.empty()) a.last_min_conf = 0;
            if (ev.step != StepKind::Prefill) a.block.steps++;
            if (a.ar) {
                rebuild_ar_window(a, tt);
            } else {
                if (ev.step == StepKind::Prefill) a.block.index = -1;
                rebuild_block(a, ev, tt);
                if ((ev.step == StepKind::Block || ev.step == StepKind::SubBlock) && !ev.unmasked.empty() &&
                    a.block.sub_size > 0)
                    a.block.active_sub = (ev.unmasked.front().position - a.block.start) / a.block.sub_size;
                else if (ev.step == StepKind::Commit)
                    a.block.active_sub = -1;
            }
            fill_confidences(a, ev);
            stream_text(a, ev, tt);
            break;
        }
        case T::Finished:
            a.finished = true;
            a.cancelled = ev.cancelled;
            a.stopped = ev.stopped;
            // the decoder reports the block of the sequence's end: after a final commit that is a new
            // block holding only the predicted head; the view keeps the block that was decoded
            if (!a.ar && !ev.block.empty() && ev.block_start == a.block.start) rebuild_block(a, ev, tt);
            a.block.active_sub = -1;
            stream_text(a, ev, tt);
            break;
        case T::Started: break;
    }
}

// ---------------------------------------------------------------------------------------------

void replay_record(Replay& r, const DecodeEvent& ev) {
    if (ev.type == DecodeEvent::Type::Started) {
        r.events.clear();
        r.active = r.playing = false;
        r.pos = -1;
        r.view = AnswerView{};
    }
    r.events.push_back(ev);
}

bool replay_seek(Replay& r, int pos, const TokenText& tt) {
    if (r.events.empty()) return false;
    pos = std::clamp(pos, 0, int(r.events.size()) - 1);
    if (pos < r.pos || r.pos < 0) {
        r.view = AnswerView{};
        r.pos = -1;
    }
    while (r.pos < pos) apply_event(r.view, r.events[size_t(++r.pos)], tt);
    r.active = true;
    return true;
}

bool replay_step(Replay& r, int delta, const TokenText& tt) {
    if (r.events.empty()) return false;
    r.playing = false;
    const int from = r.active ? r.pos : int(r.events.size()) - 1;
    return replay_seek(r, from + delta, tt);
}

void replay_play(Replay& r, double speed, double now, const TokenText& tt) {
    if (r.events.empty()) return;
    if (speed > 0) r.speed = speed;
    replay_seek(r, 0, tt);
    r.playing = true;
    r.next_time = now + 1.0 / r.speed;
}

bool replay_tick(Replay& r, double now, const TokenText& tt) {
    if (!r.active || !r.playing) return false;
    bool changed = false;
    while (r.playing && now >= r.next_time) {
        if (r.pos + 1 >= int(r.events.size())) {
            r.playing = false;
            break;
        }
        replay_seek(r, r.pos + 1, tt);
        r.next_time += 1.0 / r.speed;
        changed = true;
    }
    return changed;
}

void replay_exit(Replay& r) {
    r.active = false;
    r.playing = false;
}

// ---------------------------------------------------------------------------------------------

void set_status(ViewModel& vm, const std::string& msg, bool error, double now) {
    vm.status = msg;
    vm.status_error = error;
    vm.status_time = now;
}

void add_entry(ViewModel& vm, Entry::Kind kind, const std::string& label, const std::string& text) {
    Entry e;
    e.kind = kind;
    e.label = label;
    e.text = text;
    vm.transcript.push_back(std::move(e));
}

void begin_lane(ViewModel& vm, int lane, const std::string& label, double now) {
    Entry e;
    e.kind = Entry::Kind::Assistant;
    e.label = label;
    e.live = true;
    vm.transcript.push_back(std::move(e));
    vm.live_entry = int(vm.transcript.size()) - 1;
    vm.live_lane = lane;
    vm.live = AnswerView{};
    vm.live_started = now;
    vm.live_ended = 0;
    vm.busy = true;
    vm.scroll = 0;
}

void begin_answer(ViewModel& vm, const std::string& prompt, double now) {
    add_entry(vm, Entry::Kind::User, "you", prompt);
    vm.compare.new_prompt();
    vm.replay.active = vm.replay.playing = false;
    vm.busy = true;
    vm.scroll = 0;
    vm.live_entry = -1;
}

void on_decode_event(ViewModel& vm, const DecodeEvent& ev, const TokenText& tt, double now) {
    if (ev.type == DecodeEvent::Type::Started) vm.live_started = now;
    apply_event(vm.live, ev, tt);
    replay_record(vm.replay, ev);
    if (ev.type == DecodeEvent::Type::Finished) vm.live_ended = now;
    if (vm.live_entry >= 0 && size_t(vm.live_entry) < vm.transcript.size())
        vm.transcript[size_t(vm.live_entry)].text = vm.live.text;
}

void end_answer(ViewModel& vm, const std::string* final_text, const std::string& error, double now) {
    if (vm.live_ended == 0) vm.live_ended = now;
    if (vm.live_entry >= 0 && size_t(vm.live_entry) < vm.transcript.size()) {
        Entry& e = vm.transcript[size_t(vm.live_entry)];
        e.live = false;
        if (!error.empty()) {
            if (e.text.empty()) {
                e.kind = Entry::Kind::Error;
                e.text = error;
            } else {
                e.meta = error;
            }
        } else {
            if (final_text) e.text = *final_text;
            e.meta = answer_summary(vm.live.stats);
            if (vm.live.cancelled) e.meta += " · cancelled";
            if (vm.settings.delay_ms > 0) e.meta += " · slowed by /delay";
            if (vm.settings.compare() || vm.live_lane == 1)
                vm.compare.record(vm.live_lane, vm.live.stats, vm.live.cancelled, vm.settings);
        }
    }
    if (!error.empty()) set_status(vm, error, true, now);
    vm.live_entry = -1;
}

void end_job(ViewModel& vm, double now) {
    vm.busy = false;
    vm.live_entry = -1;
    const std::string line = finish_compare(vm.compare);
    if (!line.empty()) add_entry(vm, Entry::Kind::Info, "compare", line);
}

void scroll_transcript(ViewModel& vm, int lines) { vm.scroll = std::max(0, vm.scroll + lines); }

// ---------------------------------------------------------------------------------------------

std::string settings_text(const Settings& s) {
    const GenerateOptions& g = s.gen;
    std::string t = s.model_name.empty() ? "(no model)" : s.model_name;
    t += " · ";
    if (s.compare()) t += "compare (AR, then diffusion)";
    else t += decode_mode_name(g.mode);
    if (s.compare() || g.mode == DecodeMode::Diffusion) {
        t += " τ=" + fmt(g.threshold, 2) + " B=" + std::to_string(g.block_size) + " S=" + std::to_string(g.sub_block_size) +
             " cache=" + cache_mode_name(g.cache);
        if (g.unmask != UnmaskOrder::Confidence) t += std::string(" unmask=") + unmask_order_name(g.unmask);
    }
    t += " n=" + std::to_string(g.max_new_tokens);
    if (g.sampling.temperature > 0) t += " T=" + fmt(g.sampling.temperature, 2);
    if (!s.server.empty()) {
        t += " · " + s.server;
    } else {
        if (!s.weights.empty()) t += " · " + s.weights;
        if (s.threads > 0) t += " · " + std::to_string(s.threads) + (s.threads == 1 ? " thread" : " threads");
    }
    if (s.delay_ms > 0) t += " · delay " + std::to_string(s.delay_ms) + " ms";
    return t;
}

static std::string ms_text(double seconds) {
    const double ms = seconds * 1000;
    return fmt(ms, ms < 10 ? 1 : 0) + " ms";
}

// "1 token", "2 tokens": the counts on screen are often one.
static std::string count_text(int n, const char* one, const char* many) { return std::to_string(n) + " " + (n == 1 ? one : many); }
static std::string tokens_text(int n) { return count_text(n, "token", "tokens"); }

std::string speed_text(const DecodeStats& st, double elapsed_s) {
    return tokens_text(st.generated_tokens) + " · " + fmt(st.tokens_per_second(), 1) + " tok/s · " +
           fmt(st.tokens_per_forward(), 2) + " tok/fwd · NFE " + std::to_string(st.nfe) + " · " + fmt(elapsed_s, 1) + " s";
}

std::string cache_text(const DecodeStats& st, bool ar) {
    std::string t = "prefill " + ms_text(st.prefill_seconds);
    if (st.prefilled_tokens > 0) t += " (" + std::to_string(st.prefilled_tokens) + " tok)";
    t += " · prefix cache " + std::to_string(st.prefix_cache_len);
    if (st.reused_tokens > 0) t += " (" + std::to_string(st.reused_tokens) + " reused)";
    if (!ar) {
        const int passes = st.block_passes + st.subblock_passes;
        t += " · DualCache " + std::to_string(st.subblock_passes) + "/" + count_text(passes, "pass", "passes");
    }
    return t;
}

std::string live_stats_text(const DecodeStats& st, bool ar, double elapsed_s) {
    return speed_text(st, elapsed_s) + " · " + cache_text(st, ar);
}

std::string answer_summary(const DecodeStats& st) {
    return tokens_text(st.generated_tokens) + " · " + fmt(st.tokens_per_second(), 1) + " tok/s · " +
           fmt(st.tokens_per_forward(), 2) + " tok/forward · NFE " + std::to_string(st.nfe) + " · prefill " +
           fmt(st.prefill_seconds * 1000, 1) + " ms";
}

std::string compare_summary(const DecodeStats& ar, const DecodeStats& diffusion) {
    const double a = ar.request_tokens_per_second(), d = diffusion.request_tokens_per_second();
    std::string t = a > 0 ? "speedup " + fmt(d / a, 2) + "x" : "speedup n/a";
    if (diffusion.best_case_speedup > 0) t += " (best case here " + fmt(diffusion.best_case_speedup, 2) + "x)";
    t += ": diffusion " + fmt(d, 1) + " tok/s (" + fmt(diffusion.tokens_per_forward(), 2) + " tok/fwd, NFE " +
         std::to_string(diffusion.nfe) + ") vs AR " + fmt(a, 1) + " tok/s (NFE " + std::to_string(ar.nfe) +
         "), prompt included";
    return t;
}

void CompareState::record(int lane, const DecodeStats& st, bool cancelled, const Settings& s) {
    if (cancelled) return;
    slowed = slowed || s.delay_ms > 0;
    settings = settings_text(s);
    if (lane == 1) have_ar = true, ar = st;
    else have_diffusion = true, diffusion = st;
}

void CompareState::new_prompt() {
    have_ar = have_diffusion = slowed = false;
    ar = diffusion = DecodeStats{};
}

std::string finish_compare(CompareState& c) {
    std::string t;
    if (c.have_ar && c.have_diffusion) {
        if (c.slowed) {  // the pauses of /delay follow every pass: AR, with more passes, waits longer
            t = "slowed by /delay, speeds not compared: diffusion " + fmt(c.diffusion.tokens_per_forward(), 2) +
                " tok/fwd, NFE " + std::to_string(c.diffusion.nfe) + " vs AR NFE " + std::to_string(c.ar.nfe);
        } else {
            t = compare_summary(c.ar, c.diffusion);
            if (c.settings != c.totals_settings) {  // totals of one configuration only
                c.prompts = 0;
                c.ar_tokens = c.diffusion_tokens = 0;
                c.ar_seconds = c.diffusion_seconds = 0;
                c.totals_settings = c.settings;
            }
            c.prompts++;
            c.ar_tokens += c.ar.generated_tokens;
            c.ar_seconds += c.ar.request_seconds();
            c.diffusion_tokens += c.diffusion.generated_tokens;
            c.diffusion_seconds += c.diffusion.request_seconds();
            if (c.prompts >= 2 && c.ar_seconds > 0 && c.diffusion_seconds > 0 && c.ar_tokens > 0)
                t += " · " + std::to_string(c.prompts) + " prompts: " +
                     fmt((c.diffusion_tokens / c.diffusion_seconds) / (c.ar_tokens / c.ar_seconds), 2) + "x";
        }
    }
    c.new_prompt();
    return t;
}

std::string block_title(const AnswerView& a) {
    const BlockView& b = a.block;
    std::string t;
    if (!a.started) return "no answer yet";
    if (a.ar) {
        t = "AR · tokens " + std::to_string(b.start - a.prompt_len) + "-" + std::to_string(b.start - a.prompt_len + b.size - 1) +
            " · one per pass";
    } else if (b.index < 0) {
        t = "prefill @" + std::to_string(b.start);
    } else {
        t = "block " + std::to_string(b.index) + " @" + std::to_string(b.start);
        if (b.sub_size > 0 && b.size > 0) {
            const int nsub = (b.size + b.sub_size - 1) / b.sub_size;
            if (b.active_sub >= 0) t += " · sub " + std::to_string(b.active_sub + 1) + "/" + std::to_string(nsub);
            else t += " · " + std::to_string(nsub) + "×" + std::to_string(b.sub_size);
        }
        t += " · " + count_text(b.steps, "pass", "passes");
    }
    if (a.steps > 0) {
        t += " · step " + std::to_string(a.steps - 1) + " " + step_kind_name(a.last_kind);
        if (a.last_unmasked > 0) t += " +" + std::to_string(a.last_unmasked) + " p≥" + fmt(a.last_min_conf, 2);
    }
    if (a.finished) t += a.cancelled ? " · cancelled" : a.stopped ? " · done" : " · done (length)";
    return t;
}

}  // namespace fdl::ui
