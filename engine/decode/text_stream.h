// The answer's text as a decoder decides it. Diffusion decides cells out of order, so only the
// contiguous decided prefix of the generated cells becomes text, up to the first stop token,
// through a StreamDetokenizer that never splits a UTF-8 character. Every front end that shows
// text while it is decoded (generate, the chat, a server) reads it from here.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/decode/decode_events.h"
#include "engine/tokenizer/tokenizer.h"

namespace fdl {

class TextStream {
public:
    // With a tokenizer, special tokens are left out of the text. `piece` replaces the tokenizer
    // where there is none (tests with synthetic token ids): the text of one id.
    TextStream(const Tokenizer* tok, std::vector<int32_t> stops, std::function<std::string(int32_t)> piece = {});

    // Text that became final with this event (a Started event begins a new answer; Finished
    // flushes what was held back). "" when nothing new is final.
    std::string on_event(const DecodeEvent& ev);
    // The same for one decided cell: generated index i (position - prompt length) holds `token`.
    void set_cell(int i, int32_t token);
    std::string take();    // the text that became final since the last take()
    std::string finish();  // take() plus whatever the detokenizer still holds

    // Ends the text after `tokens` tokens (a client's answer limit shorter than the decoding's).
    void set_token_limit(int tokens) { limit_ = tokens; }
    bool stopped() const { return stopped_; }  // a stop token was reached
    bool limited() const { return limited_; }  // the token limit was reached
    int tokens() const { return int(next_); }  // tokens turned into text so far (stop token included)
    const std::string& text() const { return text_; }  // the whole answer so far

private:
    const Tokenizer* tok_;
    std::vector<int32_t> stops_;
    std::function<std::string(int32_t)> piece_;
    std::unique_ptr<StreamDetokenizer> detok_;
    std::vector<int32_t> cells_;  // by generated index; -1 undecided
    int prompt_len_ = 0;          // from the Started event
    size_t next_ = 0;             // cells already turned into text
    size_t taken_ = 0;            // bytes of text_ already returned by take()
    bool stopped_ = false;
    bool limited_ = false;
    int limit_ = -1;
    std::string text_;
    void reset();
    void advance();
};

}  // namespace fdl
