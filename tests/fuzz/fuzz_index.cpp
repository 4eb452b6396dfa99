// The sharded-checkpoint index (model.safetensors.index.json) read by SafeTensors::open_model_dir
// from a real folder holding two small shards: the fuzz input is the index file. File names
// must never leave the folder, and whatever opens must be readable.
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/io/error.h"
#include "engine/io/safetensors.h"
#include "fuzz_util.h"

namespace {

const std::string& model_dir() {
    static const std::string dir = [] {
        const std::string d = fuzz::scratch_dir();
        auto f32 = [](std::vector<float> v) {
            std::vector<uint8_t> b(v.size() * 4);
            std::memcpy(b.data(), v.data(), b.size());
            return b;
        };
        fdl::write_safetensors(d + "/model-00001-of-00002.safetensors",
                               {{"a", fdl::DType::F32, {2}, f32({1, 2})}, {"b", fdl::DType::F32, {1, 1}, f32({3})}});
        fdl::write_safetensors(d + "/model-00002-of-00002.safetensors",
                               {{"c", fdl::DType::BF16, {2}, {0x80, 0x3f, 0x00, 0x40}}, {"d", fdl::DType::I64, {1}, std::vector<uint8_t>(8)}});
        const char junk[] = "not safetensors";
        fuzz::write_file(d + "/notes.txt", junk, sizeof junk);
        return d;
    }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string& dir = model_dir();
    fuzz::write_file(dir + "/model.safetensors.index.json", data, size);
    try {
        fdl::SafeTensors st = fdl::SafeTensors::open_model_dir(dir);
        for (const std::string& name : st.names()) {
            const fdl::TensorView& t = st.get(name);
            FUZZ_CHECK(t.file.rfind(dir + "/", 0) == 0 && t.file.find('/', dir.size() + 1) == std::string::npos);
            std::vector<float> out(size_t(t.numel()));
            try {
                fdl::to_f32(t, out.data());
            } catch (const fdl::Error&) {
            }
        }
    } catch (const fdl::Error&) {
    }
    return 0;
}
