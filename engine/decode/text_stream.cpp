#include "engine/decode/text_stream.h"

#include <memory>

#include "engine/decode/stop_tokens.h"

namespace fdl {

TextStream::TextStream(const Tokenizer* tok, std::vector<int32_t> stops, std::function<std::string(int32_t)> piece)
    : tok_(tok), stops_(std::move(stops)), piece_(std::move(piece)) {
    reset();
}

void TextStream::reset() {
    detok_ = tok_ ? std::make_unique<StreamDetokenizer>(*tok_, true) : nullptr;
    cells_.clear();
    next_ = taken_ = 0;
    stopped_ = limited_ = false;
    text_.clear();
}

void TextStream::set_cell(int i, int32_t token) {
    if (i < 0) return;
    if (size_t(i) >= cells_.size()) cells_.resize(size_t(i) + 1, -1);
    cells_[size_t(i)] = token;
}

void TextStream::advance() {
    while (!stopped_ && !limited_ && next_ < cells_.size() && cells_[next_] >= 0) {
        if (limit_ >= 0 && int(next_) >= limit_) {
            limited_ = true;
            break;
        }
        const int32_t t = cells_[next_++];
        if (is_stop(stops_, t)) {
            stopped_ = true;
            break;
        }
        if (detok_) text_ += detok_->push(t);
        else if (piece_) text_ += piece_(t);
    }
}

std::string TextStream::on_event(const DecodeEvent& ev) {
    switch (ev.type) {
        case DecodeEvent::Type::Started:
            reset();
            prompt_len_ = ev.prompt_len;
            break;
        case DecodeEvent::Type::BlockStarted: break;
        case DecodeEvent::Type::Step:
            for (const Unmasked& u : ev.unmasked) set_cell(u.position - prompt_len_, u.token);
            break;
        case DecodeEvent::Type::Finished: return finish();
    }
    return take();
}

std::string TextStream::take() {
    advance();
    std::string out = text_.substr(taken_);
    taken_ = text_.size();
    return out;
}

std::string TextStream::finish() {
    advance();
    if (detok_ && !stopped_) text_ += detok_->flush();
    if (limit_ >= 0 && int(next_) >= limit_ && !stopped_) limited_ = true;
    return take();
}

}  // namespace fdl
