#include "engine/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/io/error.h"
#include "engine/io/files.h"

namespace fdl {

using json = nlohmann::json;

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::I64: return "I64";
        case DType::I32: return "I32";
        case DType::I16: return "I16";
        case DType::I8: return "I8";
        case DType::U8: return "U8";
        case DType::BOOL: return "BOOL";
        case DType::F64: return "F64";
    }
    return "?";
}

size_t dtype_size(DType t) {
    switch (t) {
        case DType::F64: case DType::I64: return 8;
        case DType::F32: case DType::I32: return 4;
        case DType::F16: case DType::BF16: case DType::I16: return 2;
        default: return 1;
    }
}

static bool parse_dtype(const std::string& s, DType& out) {
    static const std::pair<const char*, DType> table[] = {
        {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"I64", DType::I64},
        {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},     {"U8", DType::U8},
        {"BOOL", DType::BOOL}, {"F64", DType::F64}};
    for (auto& [name, t] : table)
        if (s == name) { out = t; return true; }
    return false;
}

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fff + ((u >> 16) & 1);
    return uint16_t(u >> 16);
}

float bf16_to_f32(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else {  // subnormal: renormalise
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            u = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) u = sign | 0x7f800000 | (man << 13);
    else u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = int32_t((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return uint16_t(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return uint16_t(sign);
        man |= 0x800000;
        uint32_t shift = uint32_t(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return uint16_t(sign | half);
    }
    uint32_t half = sign | (uint32_t(exp) << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return uint16_t(half);
}

void to_f32(const TensorView& t, float* out) {
    const int64_t n = t.numel();
    switch (t.dtype) {
        case DType::F32:
            if (n > 0) std::memcpy(out, t.data, size_t(n) * 4);  // an empty tensor may come with out == nullptr
            break;
        case DType::BF16:
            for (int64_t i = 0; i < n; i++) {
                uint16_t h;
                std::memcpy(&h, t.data + 2 * i, 2);
                out[i] = bf16_to_f32(h);
            }
            break;
        case DType::F16:
            for (int64_t i = 0; i < n; i++) {
                uint16_t h;
                std::memcpy(&h, t.data + 2 * i, 2);
                out[i] = f16_to_f32(h);
            }
            break;
        case DType::F64:
            for (int64_t i = 0; i < n; i++) {
                double d;
                std::memcpy(&d, t.data + 8 * i, 8);
                out[i] = float(d);
            }
            break;
        default:
            throw file_error(t.file, "tensor " + t.name + " has dtype " + dtype_name(t.dtype) +
                                         ", expected a float type (F32, F16, BF16)");
    }
}

void prefetch(const TensorView& t) {
    if (!t.data || t.nbytes == 0) return;
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    const uintptr_t a = uintptr_t(t.data) & ~(page - 1), b = uintptr_t(t.data) + t.nbytes;
    (void)madvise(reinterpret_cast<void*>(a), b - a, MADV_WILLNEED);  // advice only: errors do not matter
}

// A read-only memory mapping that lives as long as any SafeTensors refers to it.
class MappedFile {
public:
    explicit MappedFile(const std::string& path) {
        int fd = ::open(path.c_str(), O_RDONLY);
        if (fd < 0) throw file_error(path, std::string("cannot open: ") + std::strerror(errno));
        struct stat st {};
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(fd);
            throw file_error(path, "not a regular file");
        }
        size_ = size_t(st.st_size);
        if (size_ > 0) {
            void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                ::close(fd);
                throw file_error(path, std::string("cannot map: ") + std::strerror(errno));
            }
            data_ = static_cast<const uint8_t*>(p);
        }
        ::close(fd);
    }
    ~MappedFile() {
        if (data_) munmap(const_cast<uint8_t*>(data_), size_);
    }
    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

private:
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

SafeTensors SafeTensors::parse(const uint8_t* data, size_t size, const std::string& name) {
    if (size < 8) throw file_error(name, "file too small to be safetensors (" + std::to_string(size) + " bytes)");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen > size - 8 || hlen > (100u << 20))
        throw file_error(name, "header length " + std::to_string(hlen) + " exceeds the file (" +
                                   std::to_string(size) + " bytes): truncated or not safetensors");
    json header;
    try {
        header = json::parse(data + 8, data + 8 + hlen);
    } catch (const std::exception& e) {
        throw file_error(name, std::string("bad safetensors header JSON: ") + e.what());
    }
    if (!header.is_object()) throw file_error(name, "safetensors header is not a JSON object");
    const size_t base = 8 + hlen, avail = size - base;
    SafeTensors st;
    st.origin_ = name;
    for (auto& [key, val] : header.items()) {
        if (key == "__metadata__") continue;
        if (!val.is_object() || !val.contains("dtype") || !val.contains("shape") || !val.contains("data_offsets") ||
            !val["dtype"].is_string() || !val["shape"].is_array() || !val["data_offsets"].is_array() ||
            val["data_offsets"].size() != 2)
            throw file_error(name, "tensor " + key + ": header entry needs dtype, shape, data_offsets");
        TensorView t;
        t.name = key;
        t.file = name;
        if (!parse_dtype(val["dtype"].get<std::string>(), t.dtype))
            throw file_error(name, "tensor " + key + ": unknown dtype " + val["dtype"].get<std::string>());
        uint64_t numel = 1;
        for (auto& d : val["shape"]) {
            if (!d.is_number_unsigned()) throw file_error(name, "tensor " + key + ": bad shape");
            uint64_t v = d.get<uint64_t>();
            if (v > (1ull << 40) || (v && numel > (1ull << 40) / v)) throw file_error(name, "tensor " + key + ": shape too large");
            numel *= v;
            t.shape.push_back(int64_t(v));
        }
        auto& off = val["data_offsets"];
        if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
            throw file_error(name, "tensor " + key + ": bad data_offsets");
        uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
        if (b > e || e - b != numel * dtype_size(t.dtype))
            throw file_error(name, "tensor " + key + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                                       ") do not match shape and dtype");
        if (e > avail)
            throw file_error(name, "tensor " + key + " extends past the end of the file (truncated download?)");
        t.data = data + base + b;
        t.nbytes = size_t(e - b);
        st.tensors_.emplace(key, std::move(t));
    }
    return st;
}

SafeTensors SafeTensors::open_file(const std::string& path) {
    auto mf = std::make_shared<MappedFile>(path);
    SafeTensors st = parse(mf->data(), mf->size(), path);
    st.files_.push_back(mf);
    return st;
}

void SafeTensors::merge(SafeTensors&& other, const std::string& index_file) {
    for (auto& [k, v] : other.tensors_) {
        if (tensors_.count(k)) throw file_error(index_file, "tensor " + k + " appears in two shards");
        tensors_.emplace(k, std::move(v));
    }
    for (auto& f : other.files_) files_.push_back(f);
}

SafeTensors SafeTensors::open_model_dir(const std::string& dir) {
    const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
    if (file_exists(index)) {
        const json j = read_json_file(index);
        if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
            throw file_error(index, "no \"weight_map\" object");
        std::map<std::string, std::vector<std::string>> by_file;
        for (auto& [name, file] : j["weight_map"].items()) {
            if (!file.is_string()) throw file_error(index, "weight_map entry " + name + " is not a file name");
            std::string f = file.get<std::string>();
            if (f.empty() || f.find('/') != std::string::npos || f.find("..") != std::string::npos)
                throw file_error(index, "weight_map entry " + name + " names an invalid file \"" + f + "\"");
            by_file[f].push_back(name);
        }
        SafeTensors all;
        all.origin_ = dir;
        for (auto& [f, names] : by_file) {
            const std::string path = dir + "/" + f;
            if (!file_exists(path)) throw file_error(index, "names shard " + f + ", which is missing");
            SafeTensors shard = open_file(path);
            for (auto& n : names)
                if (!shard.find(n)) throw file_error(path, "tensor " + n + " listed in the index is not in this shard");
            all.merge(std::move(shard), index);
        }
        return all;
    }
    if (!file_exists(single))
        throw file_error(dir, "no model.safetensors or model.safetensors.index.json");
    SafeTensors st = open_file(single);
    st.origin_ = dir;
    return st;
}

const TensorView* SafeTensors::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

const TensorView& SafeTensors::get(const std::string& name) const {
    auto* t = find(name);
    if (!t) throw file_error(origin_, "missing tensor " + name);
    return *t;
}

std::vector<std::string> SafeTensors::names() const {
    std::vector<std::string> out;
    for (auto& [k, v] : tensors_) out.push_back(k);
    return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
    json header = json::object();
    uint64_t off = 0;
    for (auto& t : tensors) {
        header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
        off += t.bytes.size();
    }
    std::string h = header.dump();
    while ((h.size() + 8) % 8) h.push_back(' ');  // keep tensor data 8-byte aligned
    AtomicFile out(path);
    uint64_t hl = h.size();
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = uint8_t(hl >> (8 * i));
    out.write(lenbuf, 8);
    out.write(h.data(), h.size());
    for (auto& t : tensors) out.write(t.bytes.data(), t.bytes.size());
    out.commit();
}

}  // namespace fdl
