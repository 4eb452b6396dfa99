// The tokenizer files of a model folder. By default the input is a whole tokenizer.json
// (Tokenizer::from_file); an input that starts with the line "//added_tokens.json" or
// "//tokenizer_config.json" is instead that side file, read by Tokenizer::from_model_dir next to
// the tiny fixture's tokenizer.json. Whatever loads must encode and decode without trouble.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/io/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "fuzz_util.h"

namespace {

void exercise(const fdl::Tokenizer& tok) {
    static const char* const texts[] = {"Hello world", "<|im_start|>user\nhi<|im_end|>", "  don't  \t\n\n 123 ",
                                        "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80", "\xFF\xC3(\xE2\x82"};
    for (const char* t : texts) {
        for (bool special : {true, false}) {
            const std::vector<int32_t> ids = tok.encode(t, special);
            for (int32_t id : ids) FUZZ_CHECK(id >= 0);
            (void)tok.decode(ids, false);
            (void)tok.decode(ids, true);
        }
    }
    std::vector<int32_t> ids;
    for (int32_t id = -2; id < tok.size() + 2 && id < 2000; ++id) ids.push_back(id);
    (void)tok.decode(ids);
    fdl::StreamDetokenizer sd(tok);
    for (int32_t id : ids) (void)sd.push(id);
    (void)sd.flush();
    (void)tok.token_id("|<MASK>|");
}

bool strip_prefix(std::string& s, const char* p) {
    if (s.rfind(p, 0) != 0) return false;
    s.erase(0, std::strlen(p));
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    namespace fs = std::filesystem;
    std::string text(reinterpret_cast<const char*>(data), size);
    const std::string dir = fuzz::scratch_dir();
    std::error_code ec;
    fs::remove(dir + "/added_tokens.json", ec);
    fs::remove(dir + "/tokenizer_config.json", ec);
    try {
        if (strip_prefix(text, "//added_tokens.json\n") || strip_prefix(text, "//tokenizer_config.json\n")) {
            static const bool copied = [&] {
                fs::copy_file(FIXTURES_DIR "/tiny/model/tokenizer.json", dir + "/tokenizer.json",
                              fs::copy_options::overwrite_existing);
                return true;
            }();
            (void)copied;
            const bool added = size >= 2 && data[2] == 'a';
            fuzz::write_file(dir + (added ? "/added_tokens.json" : "/tokenizer_config.json"), text.data(), text.size());
            exercise(fdl::Tokenizer::from_model_dir(dir));
        } else {
            const std::string path = dir + "/fuzz_tokenizer.json";
            fuzz::write_file(path, text.data(), text.size());
            exercise(fdl::Tokenizer::from_file(path));
        }
    } catch (const fdl::Error&) {
    }
    return 0;
}
