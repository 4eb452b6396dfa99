// OpenAI's "stop" strings on streamed text: the answer ends right before the first occurrence of
// any of them, and text that might be the start of one is held back until it is clear that it
// is not (so a client never sees part of a stop string).
#pragma once
#include <string>
#include <vector>

namespace fdl::server {

class StopStrings {
public:
    explicit StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {}
    // Adds decoded text; returns the text that is now safe to send.
    std::string push(const std::string& text);
    // The end of the answer: whatever was held back (unless a stop string was found).
    std::string finish();
    bool hit() const { return hit_; }  // a stop string was found: the answer is over

private:
    std::vector<std::string> stops_;
    std::string pending_;
    bool hit_ = false;
};

}  // namespace fdl::server
