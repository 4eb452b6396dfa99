// INT4 matrix products: weights in groups of 32 inputs with a float16 scale each, 4-bit codes in
// the panel layout kernels.h describes, activations quantised to int8 per token. AVX512-VNNI,
// AVX2 and a portable loop, all on the same layout.
//
// The kernels keep a group's codes in registers and run every token of the job past them: the
// codes of 16 rows x 32 inputs are unpacked once (two nibbles per byte, a mask and a shift) and
// then serve each token with eight vpdpbusd, where the int8 kernel's register tile reuses a
// weight vector for at most 6 tokens. Each group's integer sums are scaled and added to float
// accumulators that live in a small per-thread buffer (L1), one row of 16 per panel and token.
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/io/safetensors.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/kernels_internal.h"

namespace fdl {

using namespace detail;

namespace {

constexpr int kUnit = 64;                          // inputs per unit (two groups)
constexpr size_t kUnitBytes = kUnit * 8 + 64;      // a full unit: codes of 16 rows, then 32 scales
constexpr int kChunkPanels = 2;                    // panels per job chunk
constexpr int kTokenTile = 32;                     // tokens per job chunk (their accumulators stay in L1)
constexpr int kTokenPanels = 4;                    // panels per chunk of a one-token job
constexpr int kPrefetchAhead = 1024;              // bytes ahead in a panel's stream (about 3.5 groups)

int units(int in) { return (in + kUnit - 1) / kUnit; }

uint16_t load_u16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

// Walks the groups of a panel: fn(g, gk, gl, codes, scales) with the group's index, first input,
// length (a multiple of 8, at most 32), its first 64-byte block of codes and its 16 scales.
template <class Ptr, class Fn>
inline void for_groups(Ptr panel, int in, Fn&& fn) {
    for (int u = 0; u < units(in); u++) {
        const int k0 = u * kUnit, ui = std::min(kUnit, in - k0);
        const Ptr up = panel + size_t(u) * kUnitBytes;
        for (int h = 0; h < 2; h++) {
            const int gk = k0 + h * kInt4Group;
            if (gk >= in) break;
            fn(2 * u + h, gk, std::min(kInt4Group, in - gk), up + size_t(h) * 4 * 64, up + size_t(ui) * 8 + size_t(h) * 32);
        }
    }
}

// ---- Portable ----

void int4_panel_portable(const int8_t* xq, const float* xs, const int32_t* xg, int n, const uint8_t* panel, int in,
                         int out, int o0, float* y) {
    const int ng = int4_groups(in);
    for (int t = 0; t < n; t++) {
        const int8_t* x = xq + size_t(t) * in;
        float acc[kPanel] = {};
        for_groups(panel, in, [&](int g, int gk, int gl, const uint8_t* codes, const uint8_t* scales) {
            int32_t s[kPanel];
            for (int r = 0; r < kPanel; r++) s[r] = xg[size_t(t) * ng + g];
            for (int b = 0; b < gl / 8; b++) {
                const uint8_t* blk = codes + size_t(b) * 64;
                const int8_t* xb = x + gk + 8 * b;
                for (int r = 0; r < kPanel; r++)
                    for (int i = 0; i < 4; i++) {
                        const uint8_t c = blk[4 * r + i];
                        s[r] += int32_t(c & 15) * xb[i] + int32_t(c >> 4) * xb[4 + i];
                    }
            }
            for (int r = 0; r < kPanel; r++) acc[r] += float(s[r]) * f16_to_f32(load_u16(scales + 2 * r));
        });
        for (int r = 0; r < kPanel; r++) y[size_t(t) * out + o0 + r] = acc[r] * xs[t];
    }
}

// ---- AVX512-VNNI ----

// acc += u8 . s8 per 32-bit lane, the 4 signed bytes at s8x4 broadcast to every lane by the
// instruction itself (inline asm: see matmul_int8.cpp on GCC and the dpbusd builtin).
FDL_AVX512_VNNI inline __attribute__((always_inline)) __m512i dpbusd_bcast(__m512i acc, __m512i u8, const int8_t* s8x4) {
    asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u8), "m"(*reinterpret_cast<const int32_t*>(s8x4)));
    return acc;
}

// One group (NB blocks of 8 inputs) of RP panels for nt tokens: codes unpacked into registers
// once, then per token 2 x NB x RP vpdpbusd from xg's start, scaled into acc (nt rows of RP x 16).
template <int RP, int NB>
FDL_AVX512_VNNI void int4_group_vnni(const uint8_t* const* codes, const uint8_t* const* scales, const int8_t* x,
                                     int in, const int32_t* xg, int ng, int nt, float* acc) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i lo[RP][NB], hi[RP][NB];
    __m512 sc[RP];
    // Each panel is one linear stream; asking for its bytes a few groups ahead keeps the loads
    // below from waiting on memory when few tokens leave little work to hide them behind.
    for (int p = 0; p < RP; p++)
        for (int l = 0; l < 5; l++) _mm_prefetch(reinterpret_cast<const char*>(codes[p]) + kPrefetchAhead + 64 * l, _MM_HINT_T0);
    for (int p = 0; p < RP; p++) {
        for (int b = 0; b < NB; b++) {
            const __m512i raw = _mm512_loadu_si512(codes[p] + size_t(b) * 64);
            lo[p][b] = _mm512_and_si512(raw, m4);
            hi[p][b] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
        }
        sc[p] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales[p])));
    }
    for (int t = 0; t < nt; t++) {
        const int8_t* xt = x + size_t(t) * in;
        __m512i ia[RP], ib[RP];
        const __m512i start = _mm512_set1_epi32(xg[size_t(t) * ng]);
        for (int p = 0; p < RP; p++) ia[p] = start, ib[p] = _mm512_setzero_si512();
        for (int b = 0; b < NB; b++)
            for (int p = 0; p < RP; p++) {
                ia[p] = dpbusd_bcast(ia[p], lo[p][b], xt + 8 * b);
                ib[p] = dpbusd_bcast(ib[p], hi[p][b], xt + 8 * b + 4);
            }
        for (int p = 0; p < RP; p++) ia[p] = _mm512_add_epi32(ia[p], ib[p]);
        float* at = acc + size_t(t) * RP * kPanel;
        for (int p = 0; p < RP; p++)
            _mm512_storeu_ps(at + p * kPanel, _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[p]), sc[p], _mm512_loadu_ps(at + p * kPanel)));
    }
}

template <int RP>
FDL_AVX512_VNNI void int4_panels_vnni(const int8_t* xq, const float* xs, const int32_t* xg, int nt, const uint8_t* w,
                                      int in, int out, int p0, float* y, float* acc) {
    const int ng = int4_groups(in);
    const size_t pb = int4_panel_bytes(in);
    std::memset(acc, 0, sizeof(float) * size_t(nt) * RP * kPanel);
    for_groups(w + size_t(p0) * pb, in, [&](int g, int gk, int gl, const uint8_t* codes, const uint8_t* scales) {
        const uint8_t* cp[RP];
        const uint8_t* sp[RP];
        for (int p = 0; p < RP; p++) cp[p] = codes + size_t(p) * pb, sp[p] = scales + size_t(p) * pb;
        const int8_t* x = xq + gk;
        switch (gl / 8) {
            case 4: int4_group_vnni<RP, 4>(cp, sp, x, in, xg + g, ng, nt, acc); break;
            case 3: int4_group_vnni<RP, 3>(cp, sp, x, in, xg + g, ng, nt, acc); break;
            case 2: int4_group_vnni<RP, 2>(cp, sp, x, in, xg + g, ng, nt, acc); break;
            default: int4_group_vnni<RP, 1>(cp, sp, x, in, xg + g, ng, nt, acc); break;
        }
    });
    for (int t = 0; t < nt; t++) {
        const __m512 s = _mm512_set1_ps(xs[t]);
        for (int p = 0; p < RP; p++)
            _mm512_storeu_ps(y + size_t(t) * out + size_t(p0 + p) * kPanel,
                             _mm512_mul_ps(_mm512_loadu_ps(acc + (size_t(t) * RP + p) * kPanel), s));
    }
}

// One token (the one-token decoding pass, which streams the weights): RP panels side by side,
// their float sums in registers for the whole row instead of the per-thread buffer, so nothing
// but the codes, the scales and the token's inputs is loaded in the loop.
template <int RP>
FDL_AVX512_VNNI void int4_panels_vnni_token(const int8_t* x, float xs, const int32_t* xg, const uint8_t* w, int in,
                                            int p0, float* y) {
    const size_t pb = int4_panel_bytes(in);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 facc[RP];
    for (int p = 0; p < RP; p++) facc[p] = _mm512_setzero_ps();
    const uint8_t* panel = w + size_t(p0) * pb;
    for (int u = 0; u < units(in); u++) {
        const int k0 = u * kUnit, ui = std::min(kUnit, in - k0);
        const uint8_t* up = panel + size_t(u) * kUnitBytes;
        for (int h = 0; h < 2 && k0 + h * kInt4Group < in; h++) {
            const int gk = k0 + h * kInt4Group, nb = std::min(kInt4Group, in - gk) / 8;
            const uint8_t* codes = up + size_t(h) * 4 * 64;
            const uint8_t* scales = up + size_t(ui) * 8 + size_t(h) * 32;
            const int8_t* xb = x + gk;
            __m512i ia[RP], ib[RP];
            const __m512i start = _mm512_set1_epi32(xg[2 * u + h]);
            for (int p = 0; p < RP; p++) {
                ia[p] = start, ib[p] = _mm512_setzero_si512();
                for (int l = 0; l < 5; l++)
                    _mm_prefetch(reinterpret_cast<const char*>(codes + size_t(p) * pb) + kPrefetchAhead + 64 * l, _MM_HINT_T0);
            }
            for (int b = 0; b < nb; b++)
                for (int p = 0; p < RP; p++) {
                    const __m512i raw = _mm512_loadu_si512(codes + size_t(p) * pb + size_t(b) * 64);
                    ia[p] = dpbusd_bcast(ia[p], _mm512_and_si512(raw, m4), xb + 8 * b);
                    ib[p] = dpbusd_bcast(ib[p], _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4), xb + 8 * b + 4);
                }
            for (int p = 0; p < RP; p++) {
                const __m512 sc = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + size_t(p) * pb)));
                facc[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(ia[p], ib[p])), sc, facc[p]);
            }
        }
    }
    const __m512 s = _mm512_set1_ps(xs);
    for (int p = 0; p < RP; p++) _mm512_storeu_ps(y + size_t(p0 + p) * kPanel, _mm512_mul_ps(facc[p], s));
}

// ---- AVX2 ----

// The AVX2 path also converts the float16 scales with F16C (every AVX2 CPU has it; checked).
#define FDL_AVX2_F16C __attribute__((target("avx2,fma,f16c")))

// The same for one panel, 8 rows (one 256-bit half of each 64-byte block) at a time: a
// vpmaddubsw per block and nibble gives pairs of products as int16 (at most 2 x 15 x 127), the
// eight of a group are added as int16 (at most 30,480: no overflow), and one vpmaddwd with ones
// makes the row's int32 sum.

template <int NB>
FDL_AVX2_F16C void int4_group_avx2(const uint8_t* codes, const uint8_t* scales, const int8_t* x, int in,
                              const int32_t* xg, int ng, int nt, float* acc) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    for (int half = 0; half < 2; half++) {
        __m256i lo[NB], hi[NB];
        for (int b = 0; b < NB; b++) {
            const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + size_t(b) * 64 + 32 * half));
            lo[b] = _mm256_and_si256(raw, m4);
            hi[b] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        }
        const __m256 sc = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 16 * half)));
        for (int t = 0; t < nt; t++) {
            const int8_t* xt = x + size_t(t) * in;
            __m256i p16 = _mm256_setzero_si256();
            for (int b = 0; b < NB; b++) {
                int32_t xl, xh;
                std::memcpy(&xl, xt + 8 * b, 4);
                std::memcpy(&xh, xt + 8 * b + 4, 4);
                p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(lo[b], _mm256_set1_epi32(xl)));
                p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(hi[b], _mm256_set1_epi32(xh)));
            }
            const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(p16, ones), _mm256_set1_epi32(xg[size_t(t) * ng]));
            float* at = acc + size_t(t) * kPanel + 8 * half;
            _mm256_storeu_ps(at, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, _mm256_loadu_ps(at)));
        }
    }
}

FDL_AVX2_F16C void int4_panel_avx2(const int8_t* xq, const float* xs, const int32_t* xg, int nt, const uint8_t* panel,
                              int in, int out, int o0, float* y, float* acc) {
    const int ng = int4_groups(in);
    std::memset(acc, 0, sizeof(float) * size_t(nt) * kPanel);
    for_groups(panel, in, [&](int g, int gk, int gl, const uint8_t* codes, const uint8_t* scales) {
        const int8_t* x = xq + gk;
        switch (gl / 8) {
            case 4: int4_group_avx2<4>(codes, scales, x, in, xg + g, ng, nt, acc); break;
            case 3: int4_group_avx2<3>(codes, scales, x, in, xg + g, ng, nt, acc); break;
            case 2: int4_group_avx2<2>(codes, scales, x, in, xg + g, ng, nt, acc); break;
            default: int4_group_avx2<1>(codes, scales, x, in, xg + g, ng, nt, acc); break;
        }
    });
    for (int t = 0; t < nt; t++) {
        const __m256 s = _mm256_set1_ps(xs[t]);
        for (int h = 0; h < 2; h++)
            _mm256_storeu_ps(y + size_t(t) * out + o0 + 8 * h, _mm256_mul_ps(_mm256_loadu_ps(acc + size_t(t) * kPanel + 8 * h), s));
    }
}

// One token, as the VNNI path does it: RP panels (2 x 8 rows each) with their float sums in
// registers for the whole row, and each group's activations broadcast once for all of them.
template <int RP>
FDL_AVX2_F16C void int4_panels_avx2_token(const int8_t* x, float xs, const int32_t* xg, const uint8_t* w, int in, int p0,
                                          float* y) {
    const size_t pb = int4_panel_bytes(in);
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 facc[RP][2];
    for (int p = 0; p < RP; p++) facc[p][0] = facc[p][1] = _mm256_setzero_ps();
    const uint8_t* panel = w + size_t(p0) * pb;
    for (int u = 0; u < units(in); u++) {
        const int k0 = u * kUnit, ui = std::min(kUnit, in - k0);
        const uint8_t* up = panel + size_t(u) * kUnitBytes;
        for (int h = 0; h < 2 && k0 + h * kInt4Group < in; h++) {
            const int gk = k0 + h * kInt4Group, nb = std::min(kInt4Group, in - gk) / 8;
            const uint8_t* codes = up + size_t(h) * 4 * 64;
            const uint8_t* scales = up + size_t(ui) * 8 + size_t(h) * 32;
            __m256i xv[8];
            for (int b = 0; b < nb; b++) {
                int32_t xl, xh;
                std::memcpy(&xl, x + gk + 8 * b, 4);
                std::memcpy(&xh, x + gk + 8 * b + 4, 4);
                xv[2 * b] = _mm256_set1_epi32(xl), xv[2 * b + 1] = _mm256_set1_epi32(xh);
            }
            const __m256i start = _mm256_set1_epi32(xg[2 * u + h]);
            for (int p = 0; p < RP; p++) {
                const uint8_t* cp = codes + size_t(p) * pb;
                for (int l = 0; l < 5; l++) _mm_prefetch(reinterpret_cast<const char*>(cp) + kPrefetchAhead + 64 * l, _MM_HINT_T0);
                for (int half = 0; half < 2; half++) {
                    __m256i p16 = _mm256_setzero_si256();
                    for (int b = 0; b < nb; b++) {
                        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cp + size_t(b) * 64 + 32 * half));
                        p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(_mm256_and_si256(raw, m4), xv[2 * b]));
                        p16 = _mm256_add_epi16(p16, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), xv[2 * b + 1]));
                    }
                    const __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(p16, ones), start);
                    const __m256 sc = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + size_t(p) * pb + 16 * half)));
                    facc[p][half] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), sc, facc[p][half]);
                }
            }
        }
    }
    const __m256 s = _mm256_set1_ps(xs);
    for (int p = 0; p < RP; p++)
        for (int half = 0; half < 2; half++)
            _mm256_storeu_ps(y + size_t(p0 + p) * kPanel + 8 * half, _mm256_mul_ps(facc[p][half], s));
}

enum class Path { Vnni, Avx2, Portable };

Path int4_path() {
    if (cpu_features().avx512vnni) return Path::Vnni;
    if (has_avx2_fma() && cpu_features().f16c) return Path::Avx2;
    return Path::Portable;
}

// The job: chunks of kChunkPanels panels x kTokenTile tokens.
void matmul_int4_on(Path path, const int8_t* xq, const float* xs, const int32_t* xg, int n, const uint8_t* w, int in,
                    int out, float* y) {
    if (path != Path::Portable && n == 1) {
        const int panels = out / kPanel, chunks = (panels + kTokenPanels - 1) / kTokenPanels;
        parallel_chunks(chunks, worth_threads(out, in, n), [&](int c, int) {
            const int p0 = c * kTokenPanels, np = std::min(kTokenPanels, panels - p0);
            if (path == Path::Avx2) {
                switch (np) {
                    case 4: int4_panels_avx2_token<4>(xq, xs[0], xg, w, in, p0, y); break;
                    case 3: int4_panels_avx2_token<3>(xq, xs[0], xg, w, in, p0, y); break;
                    case 2: int4_panels_avx2_token<2>(xq, xs[0], xg, w, in, p0, y); break;
                    default: int4_panels_avx2_token<1>(xq, xs[0], xg, w, in, p0, y); break;
                }
                return;
            }
            switch (np) {
                case 4: int4_panels_vnni_token<4>(xq, xs[0], xg, w, in, p0, y); break;
                case 3: int4_panels_vnni_token<3>(xq, xs[0], xg, w, in, p0, y); break;
                case 2: int4_panels_vnni_token<2>(xq, xs[0], xg, w, in, p0, y); break;
                default: int4_panels_vnni_token<1>(xq, xs[0], xg, w, in, p0, y); break;
            }
        });
        return;
    }
    const int panels = out / kPanel, pchunks = (panels + kChunkPanels - 1) / kChunkPanels;
    const int tchunks = (n + kTokenTile - 1) / kTokenTile, ng = int4_groups(in);
    const size_t pb = int4_panel_bytes(in);
    parallel_chunks(pchunks * tchunks, worth_threads(out, in, n), [&](int c, int) {
        const int p0 = c / tchunks * kChunkPanels, np = std::min(kChunkPanels, panels - p0);
        const int t0 = c % tchunks * kTokenTile, nt = std::min(kTokenTile, n - t0);
        const int8_t* x = xq + size_t(t0) * in;
        const int32_t* g = xg + size_t(t0) * ng;
        float* yt = y + size_t(t0) * out;
        if (path == Path::Portable) {
            for (int p = p0; p < p0 + np; p++) int4_panel_portable(x, xs + t0, g, nt, w + size_t(p) * pb, in, out, p * kPanel, yt);
            return;
        }
        thread_local std::vector<float> acc;  // the chunk's float accumulators
        acc.resize(size_t(kTokenTile) * kChunkPanels * kPanel);
        if (path == Path::Avx2) {
            for (int p = p0; p < p0 + np; p++)
                int4_panel_avx2(x, xs + t0, g, nt, w + size_t(p) * pb, in, out, p * kPanel, yt, acc.data());
        } else if (np == 2) {
            int4_panels_vnni<2>(x, xs + t0, g, nt, w, in, out, p0, yt, acc.data());
        } else {
            int4_panels_vnni<1>(x, xs + t0, g, nt, w, in, out, p0, yt, acc.data());
        }
    });
}

}  // namespace

// ---- Layout ----

bool packs_int4(int in, int out) { return in > 0 && out > 0 && in % 8 == 0 && out % kPanel == 0; }
size_t int4_panel_bytes(int in) { return size_t(in) * 8 + size_t(units(in)) * 64; }
size_t int4_bytes(int in, int out) { return size_t(out / kPanel) * int4_panel_bytes(in); }
int int4_groups(int in) { return (in + kInt4Group - 1) / kInt4Group; }

namespace {

// One group of gl values -> codes q (0..15) and its scale d, as quantize_int4_panel describes.
float quantize_group(const float* v, int gl, int* q) {
    float m = 0, am = 0;
    for (int i = 0; i < gl; i++)
        if (std::fabs(v[i]) > am) am = std::fabs(v[i]), m = v[i];
    auto codes_for = [&](float d, int* c) {
        const float id = d != 0 ? 1.0f / d : 0.0f;
        for (int i = 0; i < gl; i++) {
            const float x = std::nearbyint(v[i] * id);
            c[i] = x != x ? 8 : int(std::min(15.0f, std::max(0.0f, x + 8)));
        }
    };
    float d = f16_to_f32(f32_to_f16(m / -8.0f));
    codes_for(d, q);
    double num = 0, den = 0;
    for (int i = 0; i < gl; i++) num += double(v[i]) * (q[i] - 8), den += double(q[i] - 8) * (q[i] - 8);
    if (den > 0 && std::isfinite(num)) {
        const float refit = f16_to_f32(f32_to_f16(float(num / den)));
        // Kept only where it lowers the error with the codes recomputed for it.
        int q2[kInt4Group];
        codes_for(refit, q2);
        double e1 = 0, e2 = 0;
        for (int i = 0; i < gl; i++) {
            const double a = v[i] - double(q[i] - 8) * d, b = v[i] - double(q2[i] - 8) * refit;
            e1 += a * a, e2 += b * b;
        }
        if (e2 < e1) {
            d = refit;
            std::memcpy(q, q2, sizeof(int) * size_t(gl));
        }
    }
    return d;
}

// The same for a whole group of 32 finite values, not all zero, with AVX-512 (the scalar loop
// was 7 times slower than int8's quantisation and most of the time of loading a 7B model); false
// leaves other groups to quantize_group. Sums are taken in another order, so a group's refit may
// rarely differ from the scalar one's in the last bit.
// float -> float16 -> float, rounding to nearest even: one F16C instruction each way.
// (F16C named beside AVX-512F: every AVX-512 CPU has it, but a build without -march=native
// must be told so.)
#define FDL_AVX512F_F16C __attribute__((target("avx512f,f16c")))
FDL_AVX512F_F16C inline float f16_round(float x) { return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)); }

// (Functions, not lambdas: a lambda does not take its enclosing function's target.)
// q - 8 as floats: nearest (ties to even) of v / d, clamped to [-8, 7].
FDL_AVX512F_F16C inline void int4_codes(__m512 a0, __m512 a1, float d, __m512& c0, __m512& c1) {
    const __m512 id = _mm512_set1_ps(d != 0 ? 1.0f / d : 0.0f), lo = _mm512_set1_ps(-8), hi = _mm512_set1_ps(7);
    c0 = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(_mm512_mul_ps(a0, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), lo), hi);
    c1 = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps(_mm512_mul_ps(a1, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), lo), hi);
}

// The four quarters of the group as doubles: v and its codes' values.
FDL_AVX512F_F16C inline void quarters(__m512 x, __m512 y, __m512d* out) {
    out[0] = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    out[1] = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
    out[2] = _mm512_cvtps_pd(_mm512_castps512_ps256(y));
    out[3] = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(y), 1)));
}

// The group's squared error with codes c0, c1 and scale d.
FDL_AVX512F_F16C inline double sq_error(const __m512d* vd, __m512 c0, __m512 c1, float d) {
    __m512d cd[4], e = _mm512_setzero_pd();
    quarters(c0, c1, cd);
    for (int k = 0; k < 4; k++) {
        const __m512d r = _mm512_fnmadd_pd(cd[k], _mm512_set1_pd(d), vd[k]);
        e = _mm512_fmadd_pd(r, r, e);
    }
    return _mm512_reduce_add_pd(e);
}

FDL_AVX512F_F16C bool quantize_group32_avx512(const float* v, uint32_t* words, float* d_out) {
    const __m512 a0 = _mm512_loadu_ps(v), a1 = _mm512_loadu_ps(v + 16);
    if (_mm512_cmp_ps_mask(a0, a0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(a1, a1, _CMP_UNORD_Q)) return false;
    const __m512 b0 = _mm512_abs_ps(a0), b1 = _mm512_abs_ps(a1);
    const float am = _mm512_reduce_max_ps(_mm512_max_ps(b0, b1));
    if (!(am > 0.0f) || !std::isfinite(am)) return false;
    const __m512 va = _mm512_set1_ps(am);
    const __mmask16 k0 = _mm512_cmp_ps_mask(b0, va, _CMP_EQ_OQ), k1 = _mm512_cmp_ps_mask(b1, va, _CMP_EQ_OQ);
    const int at = k0 ? __builtin_ctz(k0) : 16 + __builtin_ctz(k1);  // the first of largest magnitude
    __m512d vd[4];
    quarters(a0, a1, vd);
    float d = f16_round(v[at] / -8.0f);
    __m512 c0, c1;
    int4_codes(a0, a1, d, c0, c1);
    __m512d cd[4], num = _mm512_setzero_pd();
    quarters(c0, c1, cd);
    for (int k = 0; k < 4; k++) num = _mm512_fmadd_pd(vd[k], cd[k], num);
    const double n = _mm512_reduce_add_pd(num);
    const double den = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_mul_ps(c0, c0), _mm512_mul_ps(c1, c1)));
    if (den > 0 && std::isfinite(n)) {
        const float refit = f16_round(float(n / den));
        __m512 r0, r1;
        int4_codes(a0, a1, refit, r0, r1);
        if (sq_error(vd, r0, r1, refit) < sq_error(vd, c0, c1, d)) d = refit, c0 = r0, c1 = r1;
    }
    // The codes as bytes, then each block's 4 bytes: inputs 8b + i (low nibble) and 8b + 4 + i.
    uint8_t c[kInt4Group];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_add_ps(c0, _mm512_set1_ps(8)))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + 16), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_add_ps(c1, _mm512_set1_ps(8)))));
    for (int b = 0; b < 4; b++) {
        uint32_t lo, hi;
        std::memcpy(&lo, c + 8 * b, 4);
        std::memcpy(&hi, c + 8 * b + 4, 4);
        words[b] = lo | hi << 4;
    }
    *d_out = d;
    return true;
}

}  // namespace

// Per row and group: d = m / -8 where m is the value of largest magnitude (so m itself is
// exact, as llama.cpp's Q4_0 does), codes q = round(v / d) + 8 clamped to [0, 15]; then d is
// refitted by least squares for those codes (sum v (q - 8) / sum (q - 8)^2) and kept where that
// lowers the group's squared error. Scales are rounded to float16 and the codes computed against
// the rounded value.
void quantize_int4_panel(const float* rows, int in, uint8_t* panel) {
    const size_t pb = int4_panel_bytes(in);
    std::memset(panel, 0, pb);
    const bool simd = cpu_features().avx512f;
    for_groups(panel, in, [&](int, int gk, int gl, uint8_t* codes, uint8_t* scales) {
        for (int r = 0; r < kPanel; r++) {
            const float* v = rows + size_t(r) * in + gk;
            float d;
            uint32_t words[4];
            if (simd && gl == kInt4Group && quantize_group32_avx512(v, words, &d)) {
                for (int b = 0; b < 4; b++) std::memcpy(codes + size_t(b) * 64 + 4 * r, &words[b], 4);
            } else {
                int q[kInt4Group];
                d = quantize_group(v, gl, q);
                for (int i = 0; i < gl; i++) {
                    const int b = i / 8, j = i % 8;
                    codes[size_t(b) * 64 + 4 * r + j % 4] |= uint8_t(q[i] << (j < 4 ? 0 : 4));
                }
            }
            const uint16_t d16 = f32_to_f16(d);
            std::memcpy(scales + 2 * r, &d16, 2);
        }
    });
}

void int4_group_sums(const int8_t* x_q, int n, int in, int32_t* xg) {
    const int ng = int4_groups(in);
    for (int t = 0; t < n; t++) {
        const int8_t* x = x_q + size_t(t) * in;
        for (int g = 0; g < ng; g++) {
            int32_t s = 0;
            for (int k = g * kInt4Group; k < std::min(in, (g + 1) * kInt4Group); k++) s += x[k];
            xg[size_t(t) * ng + g] = -8 * s;
        }
    }
}

void int4_row(const uint8_t* w, int in, int r, float* dst) {
    const uint8_t* panel = w + size_t(r / kPanel) * int4_panel_bytes(in);
    const int rr = r % kPanel;
    for_groups(panel, in, [&](int, int gk, int gl, const uint8_t* codes, const uint8_t* scales) {
        const float d = f16_to_f32(load_u16(scales + 2 * rr));
        for (int i = 0; i < gl; i++) {
            const uint8_t c = codes[size_t(i / 8) * 64 + 4 * rr + (i % 8) % 4];
            dst[gk + i] = float(int((i % 8) < 4 ? c & 15 : c >> 4) - 8) * d;
        }
    });
}

void matmul_int4_portable(const int8_t* x_q, const float* xs, const int32_t* xg, int n, const uint8_t* w, int in,
                          int out, float* y) {
    matmul_int4_on(Path::Portable, x_q, xs, xg, n, w, in, out, y);
}

void matmul_int4(const int8_t* x_q, const float* xs, const int32_t* xg, int n, const uint8_t* w, int in, int out,
                 float* y) {
    matmul_int4_on(int4_path(), x_q, xs, xg, n, w, in, out, y);
}

}  // namespace fdl
