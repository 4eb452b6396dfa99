// Saved chat sessions: nlohmann::json::parse of arbitrary bytes, then ChatSession::from_json.
// A session that loads must save again (to_json().dump() never throws), load back to the same
// conversation, and render to a prompt with the tiny fixture model's tokenizer.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/chat/chat_session.h"
#include "engine/io/error.h"
#include "fuzz_util.h"

namespace {

fdl::Model& model() {
    static std::unique_ptr<fdl::Model> m = fdl::Model::load(FIXTURES_DIR "/tiny/model");
    return *m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;
    fdl::ChatSession s(model());
    try {
        s.from_json(j);
    } catch (const fdl::Error&) {
        FUZZ_CHECK(s.messages().empty());  // a bad document leaves the session as it was
        return 0;
    }
    const std::string saved = s.to_json().dump(2);
    fdl::ChatSession again(model());
    again.from_json(nlohmann::json::parse(saved));
    FUZZ_CHECK(again.system() == s.system());
    FUZZ_CHECK(again.messages().size() == s.messages().size());
    for (size_t i = 0; i < s.messages().size(); ++i) {
        FUZZ_CHECK(again.messages()[i].role == s.messages()[i].role);
        FUZZ_CHECK(again.messages()[i].content == s.messages()[i].content);
    }
    const std::vector<int32_t> ids = s.prompt_ids();
    FUZZ_CHECK(!ids.empty());
    for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < model().config().vocab_size);
    return 0;
}
