/* adamw_8bit/adamw_8bit.py::adamw_8bit_rule as a C kernel (fused=True on float32 CPU parameters): per block of
 * `size` elements, the moments are decoded from their uint8 codes (the dynamic map times the block's absmax),
 * updated, the parameter written with the unrounded new moments, and the moments encoded again with the block's new
 * absmax: one pass over memory, the block's new moments kept in a per-thread scratch (L1) between its two loops.
 *
 * Encoding is bucketize(x * (1 / absmax), midpoints, right=True) (quantization.py: quantize_blockwise), i.e. the
 * code of the nearest map value (ties up), found without a search: the float bits of y = x * (1 / absmax) (sign,
 * exponent, the top MANTISSA_BITS of the mantissa) index a
 * table built by swift_optim_zoo/adamw_8bit/_code_tables.py whose entry holds the code at the start of y's bucket
 * (bits 17 and up) and the low 16 bits of the one midpoint inside the bucket, if any (bits 0-16; 0x10000: none), so
 * the code is base + (low bits of y >= key): one table read where a binary search takes eight. The table is built
 * from the same midpoints with torch.bucketize, so the codes are exactly the torch rule's.
 *
 * With AVX-512 (checked at run time) 16 elements go at once: the 256-value maps are read with in-register
 * permutes (three times faster than a gather here), and the code is found by arithmetic on the map's evenly spaced
 * decades (adamw_8bit/_code_segments.py: the segment tables that follow the code table), with small tables read
 * by permutes; the rare value within 2^-10 of a decision (and NaN) takes the table above. Exact against
 * torch.bucketize on every float32 in [-1, 1] for both maps; the gather it replaces was half the kernel's time
 * (the step 27 % faster on one 2048x2048 tensor). Arithmetic in float32 in the
 * order of the Python rule, its scalars (1 - beta1, 1 - lr wd...) computed in double and rounded once, as the eager
 * rule's Python arithmetic; built with -ffp-contract=off as the other kernels.
 */
#include "_native_common.h"

#define MANTISSA_BITS 7     /* must match _code_tables.MANTISSA_BITS */
#define LOWEST_EXPONENT 103 /* biased exponent of 2^-24, below every midpoint: _code_tables.LOWEST_EXPONENT */
#define BUCKETS (((127 - LOWEST_EXPONENT) << MANTISSA_BITS) + 2) /* per sign: tiny, the binades, |y| >= 1 */
#define LOW_BITS (23 - MANTISSA_BITS)                            /* the bits of |y| below its bucket's */
#define LOW_MASK ((1 << LOW_BITS) - 1)

/* The code of y from the table (its bucket by magnitude, then by sign; NaN counts as positive, as
 * torch.bucketize sorts it above every midpoint). */
static inline uint8_t encode_one(float y, const int32_t *table) {
    uint32_t bits;
    memcpy(&bits, &y, sizeof(bits));
    uint32_t magnitude = bits & 0x7fffffffu;
    int32_t key = (int32_t)(magnitude >> LOW_BITS) - (LOWEST_EXPONENT << MANTISSA_BITS) + 1;
    key = key < 0 ? 0 : key;
    key = key > BUCKETS - 1 ? BUCKETS - 1 : key;
    int negative = (bits >> 31) && magnitude <= 0x7f800000u;
    int32_t low = (int32_t)(magnitude & LOW_MASK);
    int32_t entry = table[key + (negative ? BUCKETS : 0)];
    int32_t position = negative ? LOW_MASK - low : low;
    return (uint8_t)((entry >> 17) + (position >= (entry & 0x1ffff)));
}

/* The constants of a step: k = (lr, 1 - beta1, 1 - beta2, eps, 1 - lr wd, bc1, sqrt_bc2). */
typedef struct {
    float lr, one_minus_b1, one_minus_b2, eps, shrink, bc1, sqrt_bc2;
} Step;

/* One block: decode, step, write the parameter, keep the new moments in m_new / v_new; their absolute maxima in
 * *m_max, *v_max (NaN if a moment is NaN, as torch's amax). */
static void block_step(float *restrict p, const float *restrict g, const uint8_t *restrict m_codes,
                       const uint8_t *restrict v_codes, float m_scale, float v_scale, int64_t size,
                       const float *restrict signed_map, const float *restrict unsigned_map, float *restrict m_new,
                       float *restrict v_new, Step k, float *m_max, float *v_max) {
    float top_m = 0.0f, top_v = 0.0f;
    int nan = 0;
    for (int64_t j = 0; j < size; ++j) {
        float gj = g[j];
        float m = signed_map[m_codes[j]] * m_scale, v = unsigned_map[v_codes[j]] * v_scale;
        m = m + (gj - m) * k.one_minus_b1;
        v = v + (gj * gj - v) * k.one_minus_b2;
        p[j] = p[j] * k.shrink - (m / k.bc1) / (sqrtf(v) / k.sqrt_bc2 + k.eps) * k.lr;
        m_new[j] = m, v_new[j] = v;
        top_m = fmaxf(top_m, fabsf(m));
        top_v = fmaxf(top_v, fabsf(v));
        nan |= (m != m) | (v != v);
    }
    *m_max = nan ? NAN : top_m;
    *v_max = nan ? NAN : top_v;
}

static void block_encode(const float *restrict values, float absmax, int64_t size, const int32_t *restrict table,
                         uint8_t *restrict codes) {
    float inverse = 1.0f / absmax;
    for (int64_t j = 0; j < size; ++j) codes[j] = encode_one(values[j] * inverse, table);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AVX512_PATH 1
#define AVX512 __attribute__((target("avx512f")))

/* map[index] for 16 indices in [0, 256), the map in 16 registers: eight two-register permutes by the low five bits,
 * then three rounds of blends by bits 5, 6 and 7. */
AVX512 static inline __m512 lookup256(const __m512 *map, __m512i index) {
    __m512 r[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm512_permutex2var_ps(map[2 * i], index, map[2 * i + 1]);
    for (int bit = 5, width = 8; bit < 8; ++bit, width /= 2) {
        __mmask16 high = _mm512_test_epi32_mask(index, _mm512_set1_epi32(1 << bit));
        for (int i = 0; i < width / 2; ++i) r[i] = _mm512_mask_blend_ps(high, r[2 * i], r[2 * i + 1]);
    }
    return r[0];
}

/* The rule's constants, one per lane, and what a block's lanes accumulate: |m|, |v| maxima and NaN. */
typedef struct {
    __m512 lr, one_minus_b1, one_minus_b2, eps, shrink, bc1, sqrt_bc2;
} StepLanes;

typedef struct {
    __m512 top_m, top_v;
    __mmask16 nan;
} Tops;

AVX512 static inline StepLanes step_lanes(Step k) {
    StepLanes c = {_mm512_set1_ps(k.lr),     _mm512_set1_ps(k.one_minus_b1), _mm512_set1_ps(k.one_minus_b2),
                   _mm512_set1_ps(k.eps),    _mm512_set1_ps(k.shrink),       _mm512_set1_ps(k.bc1),
                   _mm512_set1_ps(k.sqrt_bc2)};
    return c;
}

/* block_step's arithmetic on 16 elements whose moments m, v are decoded (times the block's scales). */
AVX512 static inline __attribute__((always_inline)) void step16(float *p, const float *g, __m512 m, __m512 v,
                                                                const StepLanes *c, float *m_new, float *v_new,
                                                                Tops *tops) {
    __m512 gj = _mm512_loadu_ps(g);
    m = _mm512_add_ps(m, _mm512_mul_ps(_mm512_sub_ps(gj, m), c->one_minus_b1));
    v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(gj, gj), v), c->one_minus_b2));
    __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(v), c->sqrt_bc2), c->eps);
    __m512 step = _mm512_mul_ps(_mm512_div_ps(_mm512_div_ps(m, c->bc1), den), c->lr);
    _mm512_storeu_ps(p, _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(p), c->shrink), step));
    _mm512_storeu_ps(m_new, m);
    _mm512_storeu_ps(v_new, v);
    tops->top_m = _mm512_max_ps(tops->top_m, _mm512_abs_ps(m));
    tops->top_v = _mm512_max_ps(tops->top_v, _mm512_abs_ps(v));
    tops->nan |= _mm512_cmp_ps_mask(m, v, _CMP_UNORD_Q);
}

/* The block's maxima from the lanes' and a tail's (NaN if any was NaN, as torch's amax). */
AVX512 static inline void finish_tops(const Tops *tops, float tail_m, float tail_v, float *m_max, float *v_max) {
    float lanes_m = _mm512_reduce_max_ps(tops->top_m), lanes_v = _mm512_reduce_max_ps(tops->top_v);
    *m_max = tops->nan || tail_m != tail_m ? NAN : fmaxf(lanes_m, tail_m);
    *v_max = tops->nan || tail_v != tail_v ? NAN : fmaxf(lanes_v, tail_v);
}

/* block_step, 16 lanes; the last size % 16 elements through block_step (same operations in the same order). */
AVX512 static void block_step_avx512(float *restrict p, const float *restrict g, const uint8_t *restrict m_codes,
                                     const uint8_t *restrict v_codes, float m_scale, float v_scale, int64_t size,
                                     const __m512 *signed_map, const __m512 *unsigned_map, const float *scalar_signed,
                                     const float *scalar_unsigned, float *restrict m_new, float *restrict v_new,
                                     Step k, float *m_max, float *v_max) {
    StepLanes c = step_lanes(k);
    __m512 ms = _mm512_set1_ps(m_scale), vs = _mm512_set1_ps(v_scale);
    Tops tops = {_mm512_setzero_ps(), _mm512_setzero_ps(), 0};
    int64_t j = 0;
    for (; j + 16 <= size; j += 16) {
        __m512i mc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(m_codes + j)));
        __m512i vc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(v_codes + j)));
        step16(p + j, g + j, _mm512_mul_ps(lookup256(signed_map, mc), ms),
               _mm512_mul_ps(lookup256(unsigned_map, vc), vs), &c, m_new + j, v_new + j, &tops);
    }
    float tail_m = 0.0f, tail_v = 0.0f;
    if (j < size)
        block_step(p + j, g + j, m_codes + j, v_codes + j, m_scale, v_scale, size - j, scalar_signed,
                   scalar_unsigned, m_new + j, v_new + j, k, &tail_m, &tail_v);
    finish_tops(&tops, tail_m, tail_v, m_max, v_max);
}

/* With AVX-512 VBMI, 64 codes are decoded at once by byte: each map is four 256-byte planes (byte b of every
 * value), looked up with byte permutes and put back together with unpacks; the codes are permuted first so the
 * unpacks' lane-interleaved order comes out as the natural one. A third of the dword permutes' work. */
#define VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

/* planes[b * 256 + i] = byte b of map[i]. */
static void map_planes(const float *map, uint8_t *planes) {
    for (int i = 0; i < 256; ++i) {
        uint8_t bytes[4];
        memcpy(bytes, map + i, 4);
        for (int b = 0; b < 4; ++b) planes[b * 256 + i] = bytes[b];
    }
}

/* map[codes[0..64)] as four registers of 16 floats, in order; planes: 16 registers (plane b in 4b .. 4b + 3). */
VBMI static inline __attribute__((always_inline)) void decode64(const uint8_t *codes, const __m512i *planes,
                                                                __m512i order, __m512 out[4]) {
    __m512i index = _mm512_permutexvar_epi8(order, _mm512_loadu_si512(codes));
    __mmask64 high = _mm512_movepi8_mask(index);
    __m512i b[4];
    for (int k = 0; k < 4; ++k) {
        __m512i low = _mm512_permutex2var_epi8(planes[4 * k], index, planes[4 * k + 1]);
        __m512i top = _mm512_permutex2var_epi8(planes[4 * k + 2], index, planes[4 * k + 3]);
        b[k] = _mm512_mask_blend_epi8(high, low, top);
    }
    __m512i w01_lo = _mm512_unpacklo_epi8(b[0], b[1]), w01_hi = _mm512_unpackhi_epi8(b[0], b[1]);
    __m512i w23_lo = _mm512_unpacklo_epi8(b[2], b[3]), w23_hi = _mm512_unpackhi_epi8(b[2], b[3]);
    out[0] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(w01_lo, w23_lo));
    out[1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(w01_lo, w23_lo));
    out[2] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(w01_hi, w23_hi));
    out[3] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(w01_hi, w23_hi));
}

/* block_step_avx512 with its 64-element chunks decoded by decode64; planes: the signed map's, then the unsigned. */
VBMI static void block_step_vbmi(float *restrict p, const float *restrict g, const uint8_t *restrict m_codes,
                                 const uint8_t *restrict v_codes, float m_scale, float v_scale, int64_t size,
                                 const __m512 *signed_map, const __m512 *unsigned_map, const uint8_t *planes,
                                 const float *scalar_signed, const float *scalar_unsigned, float *restrict m_new,
                                 float *restrict v_new, Step k, float *m_max, float *v_max) {
    __m512i signed_planes[16], unsigned_planes[16];
    for (int i = 0; i < 16; ++i) {
        signed_planes[i] = _mm512_loadu_si512(planes + 64 * i);
        unsigned_planes[i] = _mm512_loadu_si512(planes + 1024 + 64 * i);
    }
    uint8_t order_bytes[64]; /* position 16 lane + 4 q + r holds element 16 q + 4 lane + r */
    for (int lane = 0; lane < 4; ++lane)
        for (int q = 0; q < 4; ++q)
            for (int r = 0; r < 4; ++r) order_bytes[16 * lane + 4 * q + r] = (uint8_t)(16 * q + 4 * lane + r);
    __m512i order = _mm512_loadu_si512(order_bytes);
    StepLanes c = step_lanes(k);
    __m512 ms = _mm512_set1_ps(m_scale), vs = _mm512_set1_ps(v_scale);
    Tops tops = {_mm512_setzero_ps(), _mm512_setzero_ps(), 0};
    int64_t j = 0;
    for (; j + 64 <= size; j += 64) {
        __m512 m[4], v[4];
        decode64(m_codes + j, signed_planes, order, m);
        decode64(v_codes + j, unsigned_planes, order, v);
        for (int q = 0; q < 4; ++q)
            step16(p + j + 16 * q, g + j + 16 * q, _mm512_mul_ps(m[q], ms), _mm512_mul_ps(v[q], vs), &c,
                   m_new + j + 16 * q, v_new + j + 16 * q, &tops);
    }
    float tail_m = 0.0f, tail_v = 0.0f;
    if (j < size)
        block_step_avx512(p + j, g + j, m_codes + j, v_codes + j, m_scale, v_scale, size - j, signed_map,
                          unsigned_map, scalar_signed, scalar_unsigned, m_new + j, v_new + j, k, &tail_m, &tail_v);
    finish_tops(&tops, tail_m, tail_v, m_max, v_max);
}

/* block_encode, 16 lanes, by arithmetic (adamw_8bit/_code_segments.py, whose tables follow the code table): y's
 * binade picks two segments and the segment start between them, one comparison picks the segment, and the code is
 * base + clamp(floor((y - lo) / w), 0, K), each table read an in-register permute. Lanes whose t = (y - lo) / w is
 * within SEGMENT_MARGIN of an integer (a midpoint may be that close) or NaN take encode_one: exact either way. */
#define SEGMENT_MARGIN 0.0009765625f /* 2^-10: _code_segments.MARGIN */
#define TOP_BINADE (127 - LOWEST_EXPONENT + 1)

AVX512 static void block_encode_avx512(const float *restrict values, float absmax, int64_t size,
                                       const int32_t *restrict table, uint8_t *restrict codes) {
    const int32_t *segments = table + 2 * BUCKETS;
    __m512 start_pos[2], start_neg[2], lo[2], inv[2];
    __m512i packed[2], base[2], count[2];
    for (int h = 0; h < 2; ++h) {
        start_pos[h] = _mm512_loadu_ps((const float *)segments + 16 * h);
        start_neg[h] = _mm512_loadu_ps((const float *)segments + 32 + 16 * h);
        packed[h] = _mm512_loadu_si512(segments + 64 + 16 * h);
        lo[h] = _mm512_loadu_ps((const float *)segments + 96 + 16 * h);
        inv[h] = _mm512_loadu_ps((const float *)segments + 128 + 16 * h);
        base[h] = _mm512_loadu_si512(segments + 160 + 16 * h);
        count[h] = _mm512_loadu_si512(segments + 192 + 16 * h);
    }
    float inverse = 1.0f / absmax;
    __m512 scale = _mm512_set1_ps(inverse), margin = _mm512_set1_ps(SEGMENT_MARGIN);
    __m512i magnitude_mask = _mm512_set1_epi32(0x7fffffff), zero = _mm512_setzero_si512();
    __m512i offset = _mm512_set1_epi32(LOWEST_EXPONENT - 1), top = _mm512_set1_epi32(TOP_BINADE);
    __m512i five = _mm512_set1_epi32(5), ten = _mm512_set1_epi32(10);
    int64_t j = 0;
    for (; j + 16 <= size; j += 16) {
        __m512 y = _mm512_mul_ps(_mm512_loadu_ps(values + j), scale);
        __m512i bits = _mm512_castps_si512(y);
        __mmask16 negative = _mm512_cmplt_epi32_mask(bits, zero);
        __m512i binade = _mm512_sub_epi32(_mm512_srli_epi32(_mm512_and_si512(bits, magnitude_mask), 23), offset);
        binade = _mm512_min_epi32(_mm512_max_epi32(binade, zero), top);
        __m512 start = _mm512_mask_blend_ps(negative, _mm512_permutex2var_ps(start_pos[0], binade, start_pos[1]),
                                            _mm512_permutex2var_ps(start_neg[0], binade, start_neg[1]));
        __mmask16 upper = _mm512_cmp_ps_mask(y, start, _CMP_GE_OQ);
        __m512i shift = _mm512_maskz_mov_epi32(negative, ten);
        shift = _mm512_mask_add_epi32(shift, upper, shift, five);
        __m512i segment = _mm512_srlv_epi32(_mm512_permutex2var_epi32(packed[0], binade, packed[1]), shift);
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(y, _mm512_permutex2var_ps(lo[0], segment, lo[1])),
                                 _mm512_permutex2var_ps(inv[0], segment, inv[1]));
        __m512i below = _mm512_max_epi32(_mm512_cvttps_epi32(t), zero);
        below = _mm512_min_epi32(below, _mm512_permutex2var_epi32(count[0], segment, count[1]));
        __m512i code = _mm512_add_epi32(_mm512_permutex2var_epi32(base[0], segment, base[1]), below);
        _mm_storeu_si128((__m128i *)(codes + j), _mm512_cvtepi32_epi8(code));
        __m512 off = _mm512_abs_ps(_mm512_sub_ps(t, _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
        __mmask16 unsure = _mm512_cmp_ps_mask(off, margin, _CMP_NGE_UQ); /* closer than the margin, or NaN */
        for (; unsure; unsure &= (__mmask16)(unsure - 1)) {
            int lane = __builtin_ctz(unsure);
            codes[j + lane] = encode_one(values[j + lane] * inverse, table);
        }
    }
    if (j < size) block_encode(values + j, absmax, size - j, table, codes + j);
}

/* planes: the maps' byte planes (map_planes, signed then unsigned) to decode with VBMI, or NULL. */
AVX512 static void blocks_avx512(float *p, const float *g, uint8_t *m_codes, float *m_absmax, uint8_t *v_codes,
                                 float *v_absmax, int64_t b0, int64_t b1, int64_t size, const float *signed_map,
                                 const float *unsigned_map, const int32_t *signed_table,
                                 const int32_t *unsigned_table, const uint8_t *planes, float *scratch, Step k) {
    __m512 signed_regs[16], unsigned_regs[16];
    for (int i = 0; i < 16; ++i) {
        signed_regs[i] = _mm512_loadu_ps(signed_map + 16 * i);
        unsigned_regs[i] = _mm512_loadu_ps(unsigned_map + 16 * i);
    }
    float *m_new = scratch, *v_new = scratch + size;
    for (int64_t b = b0; b < b1; ++b) {
        int64_t off = b * size;
        float m_max, v_max;
        if (planes)
            block_step_vbmi(p + off, g + off, m_codes + off, v_codes + off, m_absmax[b], v_absmax[b], size,
                            signed_regs, unsigned_regs, planes, signed_map, unsigned_map, m_new, v_new, k, &m_max,
                            &v_max);
        else
            block_step_avx512(p + off, g + off, m_codes + off, v_codes + off, m_absmax[b], v_absmax[b], size,
                              signed_regs, unsigned_regs, signed_map, unsigned_map, m_new, v_new, k, &m_max, &v_max);
        m_max = m_max < 1e-12f ? 1e-12f : m_max; /* clamp(min=1e-12), NaN kept */
        v_max = v_max < 1e-12f ? 1e-12f : v_max;
        block_encode_avx512(m_new, m_max, size, signed_table, m_codes + off);
        block_encode_avx512(v_new, v_max, size, unsigned_table, v_codes + off);
        m_absmax[b] = m_max;
        v_absmax[b] = v_max;
    }
}
#endif

static void blocks_scalar(float *p, const float *g, uint8_t *m_codes, float *m_absmax, uint8_t *v_codes,
                          float *v_absmax, int64_t b0, int64_t b1, int64_t size, const float *signed_map,
                          const float *unsigned_map, const int32_t *signed_table, const int32_t *unsigned_table,
                          float *scratch, Step k) {
    float *m_new = scratch, *v_new = scratch + size;
    for (int64_t b = b0; b < b1; ++b) {
        int64_t off = b * size;
        float m_max, v_max;
        block_step(p + off, g + off, m_codes + off, v_codes + off, m_absmax[b], v_absmax[b], size, signed_map,
                   unsigned_map, m_new, v_new, k, &m_max, &v_max);
        m_max = m_max < 1e-12f ? 1e-12f : m_max;
        v_max = v_max < 1e-12f ? 1e-12f : v_max;
        block_encode(m_new, m_max, size, signed_table, m_codes + off);
        block_encode(v_new, v_max, size, unsigned_table, v_codes + off);
        m_absmax[b] = m_max;
        v_absmax[b] = v_max;
    }
}

/* The step on `blocks` blocks of `size` elements; scratch: room for threads * 2 * size floats. vector: 0 forces
 * the scalar loops, 2 the AVX-512 ones without VBMI (tests compare them). */
void swift_adamw_8bit_f32(float *p, const float *g, uint8_t *m_codes, float *m_absmax, uint8_t *v_codes,
                          float *v_absmax, int64_t blocks, int64_t size, const float *signed_map,
                          const float *unsigned_map, const int32_t *signed_table, const int32_t *unsigned_table,
                          float *scratch, double lr, double beta1, double beta2, double eps, double weight_decay,
                          double bc1, double sqrt_bc2, int vector, int threads) {
    Step k = {(float)lr,  (float)(1.0 - beta1), (float)(1.0 - beta2), (float)eps, (float)(1.0 - lr * weight_decay),
              (float)bc1, (float)sqrt_bc2};
    int wide = 0, bytewise = 0;
#ifdef AVX512_PATH
    wide = vector && __builtin_cpu_supports("avx512f");
    bytewise = wide && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi") && vector != 2;
    uint8_t planes[2048];
    if (bytewise) {
        map_planes(signed_map, planes);
        map_planes(unsigned_map, planes + 1024);
    }
#endif
    (void)bytewise;
    (void)vector;
    int nt = thread_count(threads);
    nt = (int64_t)nt > blocks ? (int)blocks : nt;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt > 0 ? nt : 1)
#endif
    {
        int64_t b0, b1;
        int team, t = team_share(blocks, &b0, &b1, &team);
        float *mine = scratch + 2 * size * (int64_t)t;
#ifdef AVX512_PATH
        if (wide)
            blocks_avx512(p, g, m_codes, m_absmax, v_codes, v_absmax, b0, b1, size, signed_map, unsigned_map,
                          signed_table, unsigned_table, bytewise ? planes : NULL, mine, k);
        else
#endif
            blocks_scalar(p, g, m_codes, m_absmax, v_codes, v_absmax, b0, b1, size, signed_map, unsigned_map,
                          signed_table, unsigned_table, mine, k);
    }
}

/* codes[i] = the code of values[i] * (1 / absmax) (what a step does to each block's new moments); vector as above. */
void swift_encode_f32(const float *values, int64_t n, float absmax, const int32_t *table, uint8_t *codes, int vector) {
#ifdef AVX512_PATH
    if (vector && __builtin_cpu_supports("avx512f")) {
        block_encode_avx512(values, absmax, n, table, codes);
        return;
    }
#endif
    (void)vector;
    block_encode(values, absmax, n, table, codes);
}

/* adamw_8bit.py::adamw_full_rule (moments kept in float32: tensors below min_8bit_size), the same arithmetic:
 * m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); p = p (1 - lr wd) - lr (m / bc1) / (sqrt(v) / sqrt_bc2 + eps). */
MULTIVERSION static void full_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p, *restrict m = r->s[0], *restrict v = r->s[1];
    const float *restrict g = r->g;
    float lr = r->k[0], one_minus_b1 = r->k[1], one_minus_b2 = r->k[2], eps = r->k[3], shrink = r->k[4];
    float bc1 = r->k[5], sqrt_bc2 = r->k[6];
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i], mi = m[i], vi = v[i];
        mi = mi + (gi - mi) * one_minus_b1;
        vi = vi + (gi * gi - vi) * one_minus_b2;
        p[i] = p[i] * shrink - (mi / bc1) / (sqrtf(vi) / sqrt_bc2 + eps) * lr;
        m[i] = mi, v[i] = vi;
    }
}

void swift_adamw_full_f32(float *p, const float *g, float *m, float *v, int64_t n, double lr, double beta1,
                          double beta2, double eps, double weight_decay, double bc1, double sqrt_bc2, int threads) {
    Rule r;
    memset(&r, 0, sizeof(r));
    r.p = p, r.g = g, r.s[0] = m, r.s[1] = v;
    float k[] = {(float)lr,  (float)(1.0 - beta1), (float)(1.0 - beta2), (float)eps, (float)(1.0 - lr * weight_decay),
                 (float)bc1, (float)sqrt_bc2};
    memcpy(r.k, k, sizeof(k));
    run_split(full_range, &r, n, threads);
}
