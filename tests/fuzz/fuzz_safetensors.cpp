// SafeTensors::parse on arbitrary bytes: the 8-byte header length, the JSON header, every
// tensor's dtype/shape/offsets. A parsed file must only describe bytes inside the input, and
// converting any float tensor must stay inside them.
#include <cstdint>
#include <vector>

#include "engine/io/error.h"
#include "engine/io/safetensors.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // A copy of exactly `size` bytes, so that ASan sees any read past the end of the "file".
    std::vector<uint8_t> buf(data, data + size);
    try {
        fdl::SafeTensors st = fdl::SafeTensors::parse(buf.data(), buf.size(), "fuzz.safetensors");
        for (const std::string& name : st.names()) {
            const fdl::TensorView& t = st.get(name);
            FUZZ_CHECK(t.data >= buf.data() && t.data + t.nbytes <= buf.data() + buf.size());
            FUZZ_CHECK(size_t(t.numel()) * fdl::dtype_size(t.dtype) == t.nbytes);
            std::vector<float> out(size_t(t.numel()));
            try {
                fdl::to_f32(t, out.data());
            } catch (const fdl::Error&) {  // an integer dtype
            }
        }
        FUZZ_CHECK(st.find("\x01 not a tensor") == nullptr);
    } catch (const fdl::Error&) {
    }
    return 0;
}
