#include "client/answer_stream.h"

#include <algorithm>
#include <map>
#include <string_view>

namespace fdl::client {

using json = nlohmann::json;

namespace {

const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool looks_special(const std::string& t) {
    return t.size() >= 4 && t.compare(0, 2, "<|") == 0 && t.compare(t.size() - 2, 2, "|>") == 0;
}

// The text as the server's JSON carries it: invalid UTF-8 replaced by U+FFFD.
std::string as_sent(const std::string& bytes) {
    return json::parse(json(bytes).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
}

bool parse_kind(const std::string& s, StepKind& k) {
    static const std::map<std::string, StepKind> kinds = {{"prefill", StepKind::Prefill},
                                                          {"block", StepKind::Block},
                                                          {"subblock", StepKind::SubBlock},
                                                          {"commit", StepKind::Commit},
                                                          {"decode", StepKind::Decode}};
    auto it = kinds.find(s);
    if (it == kinds.end()) return false;
    k = it->second;
    return true;
}

int int_of(const json& j, const char* key, int fallback) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<int>() : fallback;
}

double number_of(const json& j, const char* key, double fallback) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

std::string string_at(const json& arr, size_t i) {
    return arr.is_array() && i < arr.size() && arr[i].is_string() ? arr[i].get<std::string>() : std::string();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// RemoteTokens

std::string RemoteTokens::bytes(int32_t id) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = map_.find(id);
    return it == map_.end() ? std::string() : it->second.text;
}

bool RemoteTokens::special(int32_t id) const {
    std::lock_guard<std::mutex> lk(mu_);
    if (std::find(stops_.begin(), stops_.end(), id) != stops_.end()) return true;
    auto it = map_.find(id);
    return it != map_.end() && it->second.special;
}

std::vector<int32_t> RemoteTokens::stops() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stops_;
}

void RemoteTokens::set_stops(std::vector<int32_t> ids) {
    std::lock_guard<std::mutex> lk(mu_);
    stops_ = std::move(ids);
}

void RemoteTokens::set(int32_t id, const std::string& text) {
    std::lock_guard<std::mutex> lk(mu_);
    Entry& e = map_[id];
    e.text = text;
    e.exact = text.find(kReplacement) == std::string::npos;
    e.special = looks_special(text);
}

int32_t RemoteTokens::add_text(const std::string& text) {
    std::lock_guard<std::mutex> lk(mu_);
    const int32_t id = next_id_++;
    map_[id] = Entry{text, true, false};
    return id;
}

int32_t RemoteTokens::add_cell(const std::string& sent) {
    std::lock_guard<std::mutex> lk(mu_);
    const int32_t id = next_id_++;
    map_[id] = Entry{sent, false, false};
    return id;
}

void RemoteTokens::resolve(int32_t id, std::string bytes) {
    std::lock_guard<std::mutex> lk(mu_);
    Entry& e = map_[id];
    e.text = std::move(bytes);
    e.exact = true;
}

void RemoteTokens::leave_out(int32_t id) {
    std::lock_guard<std::mutex> lk(mu_);
    map_[id].special = true;
}

bool RemoteTokens::known(int32_t id) const {
    std::lock_guard<std::mutex> lk(mu_);
    return map_.count(id) > 0;
}

bool RemoteTokens::exact(int32_t id) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = map_.find(id);
    return it != map_.end() && it->second.exact;
}

// ---------------------------------------------------------------------------------------------
// SseReader

void SseReader::feed(const char* data, size_t n,
                     const std::function<void(const std::string&, const std::string&)>& on_event) {
    buf_.append(data, n);
    size_t start = 0;
    for (;;) {
        const size_t nl = buf_.find('\n', start);
        if (nl == std::string::npos) break;
        std::string line = buf_.substr(start, nl - start);
        start = nl + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) {
            if (has_data_) on_event(event_, data_);
            data_.clear();
            event_.clear();
            has_data_ = false;
            continue;
        }
        if (line[0] == ':') continue;  // a comment (a keep-alive)
        const size_t colon = line.find(':');
        const std::string field = line.substr(0, colon);
        std::string value = colon == std::string::npos ? std::string() : line.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        if (field == "data") {
            if (has_data_) data_ += '\n';
            data_ += value;
            has_data_ = true;
        } else if (field == "event") {
            event_ = value;
        }
    }
    buf_.erase(0, start);
}

// ---------------------------------------------------------------------------------------------
// AnswerStream

AnswerStream::AnswerStream(std::shared_ptr<RemoteTokens> tokens, Emit emit, double started)
    : tokens_(std::move(tokens)), emit_(std::move(emit)), t_request_(started) {}

bool AnswerStream::is_stop(int32_t id) const {
    if (stops_cache_.empty()) return false;
    return std::find(stops_cache_.begin(), stops_cache_.end(), id) != stops_cache_.end();
}

void AnswerStream::on_data(const std::string& data, double now) {
    if (data == "[DONE]") {
        done_ = true;
        return;
    }
    json j = json::parse(data, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        if (error_.empty()) error_ = "the server sent a stream chunk that is not a JSON object: " + data.substr(0, 80);
        return;
    }
    on_chunk(j, now);
}

void AnswerStream::on_chunk(const json& c, double now) {
    if (finished_) return;
    if (auto e = c.find("error"); e != c.end() && !e->is_null()) {
        if (e->is_object() && e->contains("message") && (*e)["message"].is_string()) error_ = (*e)["message"].get<std::string>();
        else if (e->is_string()) error_ = e->get<std::string>();
        else error_ = e->dump();
        if (error_.empty()) error_ = "the server reported an error";
        return;
    }
    if (auto s = c.find("step"); s != c.end() && s->is_object() && !plain_) on_step(*s, now);
    if (auto u = c.find("usage"); u != c.end() && u->is_object()) usage_ = *u;
    if (auto t = c.find("timings"); t != c.end() && t->is_object()) timings_ = *t;
    if (auto ch = c.find("choices"); ch != c.end() && ch->is_array() && !ch->empty() && (*ch)[0].is_object()) {
        const json& choice = (*ch)[0];
        std::string delta;
        if (auto d = choice.find("delta"); d != choice.end() && d->is_object()) {
            if (auto t = d->find("content"); t != d->end() && t->is_string()) delta = t->get<std::string>();
        } else if (auto t = choice.find("text"); t != choice.end() && t->is_string()) {
            delta = t->get<std::string>();
        }
        on_text(delta, now);
        if (auto f = choice.find("finish_reason"); f != choice.end() && f->is_string()) finish_reason_ = f->get<std::string>();
    }
}

void AnswerStream::start(DecodeMode decoder, int prompt_len, int block_size, int sub_block_size, double now) {
    started_ = true;
    stops_cache_ = tokens_->stops();
    decoder_ = decoder;
    prompt_len_ = prompt_len;
    block_size_ = block_size;
    sub_block_size_ = sub_block_size;
    stats_.prompt_tokens = prompt_len;
    DecodeEvent ev;
    ev.type = DecodeEvent::Type::Started;
    ev.decoder = decoder;
    ev.block_size = block_size;
    ev.sub_block_size = sub_block_size;
    ev.prompt_len = prompt_len;
    ev.mask_token = kRemoteMask;
    ev.stats = stats_;
    held_.push_back({std::move(ev), text_upto()});
    (void)now;
}

void AnswerStream::on_text(const std::string& delta, double now) {
    if (delta.empty()) return;
    content_ += delta;
    if (steps_) {
        settle();
        release(false);
        return;
    }
    // A stream without steps: the delta is one made-up token, decided by one AR-style pass.
    plain_ = true;
    if (!started_) start(DecodeMode::AR, 0, 1, 0, now);
    const int32_t id = tokens_->add_text(delta);
    const int pos = int(gen_.size());
    gen_.push_back(id);
    real_.push_back(id);
    DecodeStats& st = stats_;
    st.generated_tokens = pos + 1;
    st.nfe = pos + 1;
    if (pos == 0) {
        st.prefill_passes = 1;
        st.prefill_generated = 1;
        st.prefill_seconds = now - t_request_;
        t_decode0_ = now;
    } else {
        st.decode_passes++;
    }
    st.decode_seconds = now - t_decode0_;
    st.prefix_cache_len = pos + 1;
    DecodeEvent ev;
    ev.type = DecodeEvent::Type::Step;
    ev.decoder = DecodeMode::AR;
    ev.step = pos == 0 ? StepKind::Prefill : StepKind::Decode;
    ev.block_start = pos;
    ev.block_size = 1;
    ev.prompt_len = 0;
    ev.mask_token = kRemoteMask;
    ev.unmasked = {{pos, id, 1.0f}};
    ev.block = {id};
    ev.stats = st;
    held_.push_back({std::move(ev), text_upto()});
    release(false);
}

void AnswerStream::on_step(const json& s, double now) {
    StepKind kind;
    if (!s.contains("kind") || !s["kind"].is_string() || !parse_kind(s["kind"].get<std::string>(), kind)) return;
    steps_ = true;
    const DecodeMode decoder = s.value("decoder", std::string()) == "ar" ? DecodeMode::AR : DecodeMode::Diffusion;
    if (!started_) {
        start(decoder, int_of(s, "prompt_tokens", 0), int_of(s, "block_size", decoder == DecodeMode::AR ? 1 : 32),
              int_of(s, "sub_block_size", 0), now);
        if (kind != StepKind::Prefill) t_decode0_ = t_request_;  // no separate prefill: the decode clock holds the prompt
    }
    const int block_start = int_of(s, "block_start", 0);
    const int block_index = int_of(s, "block_index", -1);

    // The cells this pass decided, and the text of every token it names. A generated cell sent
    // with U+FFFD gets an id of its own, whose bytes the answer's text will show.
    std::vector<Unmasked> un;
    std::vector<int32_t> real;
    const json& uj = s.contains("unmasked") ? s["unmasked"] : json();
    const json& texts = s.contains("text") ? s["text"] : json();
    if (uj.is_array())
        for (size_t i = 0; i < uj.size(); i++) {
            const json& u = uj[i];
            if (!u.is_array() || u.size() < 2 || !u[0].is_number_integer() || !u[1].is_number_integer()) continue;
            const float conf = u.size() > 2 && u[2].is_number() ? u[2].get<float>() : 1.0f;
            const int32_t pos = u[0].get<int32_t>(), id = u[1].get<int32_t>();
            const std::string text = string_at(texts, i);
            const int gi = pos - prompt_len_;
            int32_t shown = id;
            if (gi >= 0 && text.find(kReplacement) != std::string::npos) shown = cell_id_[gi] = tokens_->add_cell(text);
            else tokens_->set(id, text);
            un.push_back({pos, shown, conf});
            real.push_back(id);
        }
    std::vector<int32_t> block;
    const json& bj = s.contains("block") ? s["block"] : json();
    const json& btext = s.contains("block_text") ? s["block_text"] : json();
    if (bj.is_array())
        for (size_t i = 0; i < bj.size(); i++) {
            const int32_t t = bj[i].is_number_integer() ? bj[i].get<int32_t>() : -1;
            if (t >= 0) {
                const auto own = cell_id_.find(block_start + int(i) - prompt_len_);
                if (own != cell_id_.end()) {
                    block.push_back(own->second);
                    continue;
                }
                if (!tokens_->known(t)) tokens_->set(t, string_at(btext, i));
                block.push_back(t);
            } else if (kind == StepKind::Prefill) {
                break;  // a prefill knows only the prompt's cells of the next block: the rest is past the sequence
            } else {
                block.push_back(kRemoteMask);
            }
        }

    DecodeEvent ev;
    ev.decoder = decoder_;
    ev.block_index = block_index;
    ev.block_start = block_start;
    ev.block_size = int_of(s, "block_size", block_size_);
    ev.sub_block_size = int_of(s, "sub_block_size", sub_block_size_);
    ev.prompt_len = prompt_len_;
    ev.mask_token = kRemoteMask;

    // A new diffusion block begins: BlockStarted, with the cells this pass decided still masked.
    if (decoder_ == DecodeMode::Diffusion && kind != StepKind::Prefill && block_index != block_index_) {
        block_index_ = block_index;
        DecodeEvent b = ev;
        b.type = DecodeEvent::Type::BlockStarted;
        b.block = block;
        for (const Unmasked& u : un) {
            const int i = u.position - block_start;
            if (i >= 0 && size_t(i) < b.block.size()) b.block[size_t(i)] = kRemoteMask;
        }
        b.stats = stats_;
        held_.push_back({std::move(b), text_upto()});
    }

    for (size_t k = 0; k < un.size(); k++) {
        const int i = un[k].position - prompt_len_;
        if (i < 0) continue;
        if (size_t(i) >= gen_.size()) gen_.resize(size_t(i) + 1, -1), real_.resize(size_t(i) + 1, -1);
        gen_[size_t(i)] = un[k].token;
        real_[size_t(i)] = real[k];
    }
    DecodeStats& st = stats_;
    st.nfe = int_of(s, "nfe", st.nfe + 1);
    switch (kind) {
        case StepKind::Prefill: st.prefill_passes++; break;
        case StepKind::Block: st.block_passes++; break;
        case StepKind::SubBlock: st.subblock_passes++; break;
        case StepKind::Commit: st.commit_passes++; break;
        case StepKind::Decode: st.decode_passes++; break;
    }
    st.generated_tokens += int(un.size());
    if (kind == StepKind::Prefill) {
        st.prefill_generated = int(un.size());
        st.prefill_seconds = now - t_request_;
        t_decode0_ = now;
    }
    if (t_decode0_ < 0) t_decode0_ = t_request_;
    st.decode_seconds = now - t_decode0_;
    if (decoder_ == DecodeMode::AR) st.prefix_cache_len = prompt_len_ + st.generated_tokens - 1;
    else st.prefix_cache_len = kind == StepKind::Commit ? block_start + ev.block_size : block_start;

    ev.type = DecodeEvent::Type::Step;
    ev.step = kind;
    ev.unmasked = std::move(un);
    ev.block = std::move(block);
    ev.stats = st;
    held_.push_back({std::move(ev), text_upto()});
    settle();
    release(false);
}

size_t AnswerStream::text_upto() const {
    size_t i = 0;
    while (i < gen_.size() && gen_[i] >= 0 && !is_stop(gen_[i])) i++;
    return i;
}

size_t AnswerStream::readable_upto() {
    while (readable_ < gen_.size() && gen_[readable_] >= 0) {
        const int32_t t = gen_[readable_];
        if (is_stop(t)) return SIZE_MAX;  // nothing after a stop is read
        if (!tokens_->exact(t) && !tokens_->special(t)) break;
        readable_++;
    }
    return readable_;
}

// Finds the bytes of a run of cells whose text came with U+FFFD in it (parts of a character split
// between tokens, or bytes that form no character), given the answer text `s` they make
// together: a split of `s` into one piece per cell that the server would have sent as those
// texts. (Bytes that form no character are U+FFFD in the server's text too, so a cell may take
// the U+FFFD the text shows: the answer reads as the server's.)
bool AnswerStream::learn_run(const std::vector<size_t>& cells, const std::string& s) {
    const size_t k = cells.size();
    std::vector<std::string> sent(k), piece(k);
    for (size_t i = 0; i < k; i++) sent[i] = tokens_->bytes(gen_[cells[i]]);
    std::function<bool(size_t, size_t)> fit = [&](size_t i, size_t off) -> bool {
        if (i == k) return off == s.size();
        for (size_t len = 1; off + len <= s.size(); len++) {
            std::string p = s.substr(off, len);
            if (as_sent(p) != sent[i]) continue;
            piece[i] = std::move(p);
            if (fit(i + 1, off + len)) return true;
        }
        return false;
    };
    if (!fit(0, 0)) return false;
    for (size_t i = 0; i < k; i++) tokens_->resolve(gen_[cells[i]], piece[i]);
    return true;
}

// Walks the answer's cells in order against the server's text: a cell with exact text must match
// it; a run of cells with split characters finds its bytes in it.
void AnswerStream::settle() {
    while (!repair_off_ && settled_ < gen_.size()) {
        const int32_t t = gen_[settled_];
        if (t < 0 || is_stop(t)) return;
        if (tokens_->special(t)) {
            settled_++;
            continue;
        }
        const std::string_view rest = std::string_view(content_).substr(settled_bytes_);
        if (tokens_->exact(t)) {
            const std::string txt = tokens_->bytes(t);
            const size_t n = std::min(txt.size(), rest.size());
            if (rest.substr(0, n) != std::string_view(txt).substr(0, n)) repair_off_ = true;  // not this server's text: stop matching
            if (repair_off_ || n < txt.size()) return;  // (or its text has not come yet)
            settled_++;
            settled_bytes_ += txt.size();
            continue;
        }
        // The run: the cells up to the next one with whole, non-empty text (cells with no text
        // of their own, special or empty, add nothing to the server's text).
        std::vector<size_t> run;
        size_t j = settled_;
        for (; j < gen_.size() && gen_[j] >= 0 && !is_stop(gen_[j]); j++) {
            const int32_t c = gen_[j];
            if (tokens_->special(c)) continue;
            if (!tokens_->exact(c)) run.push_back(j);
            else if (!tokens_->bytes(c).empty()) break;
        }
        if (run.size() > 8) {
            repair_off_ = true;
            return;
        }
        const bool last = j == gen_.size() || gen_[j] < 0;  // nothing decided after the run
        if (last && !ended_) return;                          // it may go on
        size_t len = 0;
        if (!last && !is_stop(gen_[j])) {
            const std::string next = tokens_->bytes(gen_[j]);
            bool found = false;
            for (size_t n = 1; n + next.size() <= rest.size() && n <= 64; n++)
                if (rest.substr(n, next.size()) == next && learn_run(run, std::string(rest.substr(0, n)))) {
                    len = n;
                    found = true;
                    break;
                }
            if (!found) {
                if (rest.size() > 64 + next.size()) repair_off_ = true;
                return;
            }
        } else {  // the text ends with the run: the rest of the server's text is its
            if (!learn_run(run, std::string(rest))) return;
            len = rest.size();
        }
        settled_ = j;
        settled_bytes_ += len;
    }
}

void AnswerStream::release(bool all) {
    if (held_.size() > 64) repair_off_ = true;  // never hold the view back for long
    while (!held_.empty()) {
        if (!all && !repair_off_ && held_.front().upto > readable_upto()) break;
        emit_(held_.front().ev);
        held_.pop_front();
    }
}

void AnswerStream::finish(bool cancelled, double now) {
    if (finished_) return;
    if (!started_) start(steps_ ? DecodeMode::Diffusion : DecodeMode::AR, 0, 1, 0, now);
    ended_ = !cancelled;  // all of the server's text is here
    settle();
    // Cells left with part of a character when the server's text has ended (it never completes
    // the character before a stop token): as there, not part of the text.
    if (ended_ && !repair_off_ && settled_bytes_ >= content_.size())
        for (size_t i = settled_, end = text_upto(); i < end; i++)
            if (!tokens_->exact(gen_[i]) && !tokens_->special(gen_[i])) tokens_->leave_out(gen_[i]);
    release(true);
    finished_ = true;

    DecodeStats st = stats_;
    if (usage_.is_object()) {
        st.prompt_tokens = int_of(usage_, "prompt_tokens", st.prompt_tokens);
        if (auto d = usage_.find("prompt_tokens_details"); d != usage_.end() && d->is_object())
            st.reused_tokens = int_of(*d, "cached_tokens", st.reused_tokens);
        if (!steps_ && !timings_.is_object()) st.generated_tokens = int_of(usage_, "completion_tokens", st.generated_tokens);
    }
    if (timings_.is_object()) {
        const json& t = timings_;
        st.prefilled_tokens = int_of(t, "prompt_n", st.prefilled_tokens);
        st.reused_tokens = int_of(t, "cached_n", int_of(t, "cache_n", st.reused_tokens));
        st.generated_tokens = int_of(t, "predicted_n", st.generated_tokens);
        st.nfe = int_of(t, "forward_passes", st.nfe);
        st.prefill_seconds = number_of(t, "prompt_ms", st.prefill_seconds * 1e3) / 1e3;
        st.decode_seconds = number_of(t, "predicted_ms", st.decode_seconds * 1e3) / 1e3;
    } else if (!cancelled && st.decode_seconds <= 0 && t_decode0_ >= 0) {
        st.decode_seconds = now - t_decode0_;
    }
    if (!steps_ && st.generated_tokens > 0) {  // an AR server: one pass per token, the first in the prefill
        if (!timings_.is_object() || !timings_.contains("forward_passes")) st.nfe = st.generated_tokens;
        st.prefill_passes = 1;
        st.prefill_generated = 1;
        st.decode_passes = st.generated_tokens - 1;
    }
    stats_ = st;

    DecodeEvent ev;
    ev.type = DecodeEvent::Type::Finished;
    ev.decoder = decoder_;
    ev.block_index = block_index_;
    ev.block_size = block_size_;
    ev.sub_block_size = sub_block_size_;
    ev.prompt_len = prompt_len_;
    ev.mask_token = kRemoteMask;
    ev.cancelled = cancelled;
    ev.stopped = finish_reason_ == "stop";
    ev.stats = st;
    emit_(ev);
}

std::vector<int32_t> AnswerStream::tokens() const {
    std::vector<int32_t> out;
    for (int32_t t : real_) {
        if (t < 0) break;
        out.push_back(t);
        if (is_stop(t)) break;
    }
    return out;
}

}  // namespace fdl::client
