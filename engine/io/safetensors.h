// Read-only access to .safetensors files (single file or sharded with an index), memory-mapped.
// Format: 8-byte little-endian header length, JSON header {name: {dtype, shape, data_offsets}},
// then the raw tensor bytes. Every inconsistency is reported as "<file>: <problem>".
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace fdl {

enum class DType { F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F64 };
const char* dtype_name(DType t);
size_t dtype_size(DType t);

struct TensorView {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;
    size_t nbytes = 0;
    std::string file;  // which file holds it (for error messages)
    int64_t numel() const;
};

// Converts any float tensor (F32/F16/BF16/F64) to float32 in `out` (numel floats).
void to_f32(const TensorView& t, float* out);

// Asks the kernel to start reading a tensor's bytes from disk now (madvise WILLNEED on its pages),
// so that a cold load reads it in large requests ahead of use instead of a fault at a time.
void prefetch(const TensorView& t);

class MappedFile;

class SafeTensors {
public:
    // Opens one .safetensors file.
    static SafeTensors open_file(const std::string& path);
    // Opens a model folder: model.safetensors, or the shards named by model.safetensors.index.json.
    static SafeTensors open_model_dir(const std::string& dir);
    // Parses a header from memory (used by open_file and by the fuzzer). `size` is the whole file.
    static SafeTensors parse(const uint8_t* data, size_t size, const std::string& name);

    const TensorView* find(const std::string& name) const;
    // Throws "<dir>: missing tensor <name>" when absent.
    const TensorView& get(const std::string& name) const;
    std::vector<std::string> names() const;
    const std::string& origin() const { return origin_; }

private:
    std::map<std::string, TensorView> tensors_;
    std::vector<std::shared_ptr<MappedFile>> files_;
    std::string origin_;
    void merge(SafeTensors&& other, const std::string& index_file);
};

// Writes a safetensors file (used by mkmodel and tests). Tensors are written in the given order.
struct TensorToWrite {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

// float32 <-> bfloat16 / float16 helpers (round to nearest even).
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace fdl
