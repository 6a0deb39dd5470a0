/* The per-tensor rules of the element-wise optimizers (sgd, adopt, ademamix, adan, mars, lamb, stable_adamw,
 * prodigy, and the cautious steps of adamw and lion) as C kernels: what fused=True runs for float32 CPU tensors
 * (swift_optim_zoo/_native_rules.py calls them, each mirroring the Python rule named in its comment).
 *
 * A rule that needs a whole-tensor statistic (LAMB's trust ratio, StableAdamW's RMS, MARS' correction norm, the
 * cautious mask's kept count, Prodigy's sums) accumulates it in the pass that updates the moments, where the math
 * allows it, and writes the parameter in a second pass; MARS must know its norm before the moments, so it reads the
 * gradient twice. Sums are carried in double and added in thread order: the same team size gives the same bits.
 * Every pass is one loop over memory, split over OpenMP threads by elements (one thread for small tensors).
 * Arithmetic is float32 in the order of the Python rule; the library is built with -ffp-contract=off, so no
 * product is fused into an addition and a value recomputed in a later pass is bitwise the one of the first pass.
 */
#include "_native_common.h"

/* flags of the rules (each rule reads the ones it has) */
#define F_CAUTIOUS 1
#define F_DECOUPLED 2
#define F_DECAY 4
#define F_CORRECTED 8
#define F_NESTEROV 16

/* The cautious mask's scale numel / (kept + 1) (arXiv:2411.16085), for elements whose update agrees with g. */
static float kept_scale(int64_t n, int64_t kept) { return (float)((double)n / (double)(kept + 1)); }

static Rule rule_of(float *p, const float *g, float *s0, float *s1, float *s2, float *s3, int flags) {
    Rule r;
    memset(&r, 0, sizeof(r));
    r.p = p;
    r.g = g;
    r.s[0] = s0;
    r.s[1] = s1;
    r.s[2] = s2;
    r.s[3] = s3;
    r.flags = flags;
    return r;
}

/* ------------------------------------------------------------------------------------------------------------
 * sgd/sgd.py::sgd_rule: g' = g + wd p (L2); b = keep b + scale g'; d = nesterov ? g' + mu b : b;
 * p = p (1 - lr wd) (decoupled) - lr d.   k = (lr, momentum, weight_decay, keep, scale)
 * ------------------------------------------------------------------------------------------------------------ */
MULTIVERSION static void sgd_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p, *restrict b = r->s[0];
    const float *restrict g = r->g;
    float lr = r->k[0], mu = r->k[1], wd = r->k[2], keep = r->k[3], scale = r->k[4];
    int decay = r->flags & F_DECAY, l2 = decay && !(r->flags & F_DECOUPLED), nesterov = r->flags & F_NESTEROV;
    float shrink = decay && !l2 ? 1.0f - lr * wd : 1.0f;
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float gi = l2 ? g[i] + p[i] * wd : g[i];
        float bi = b[i] * keep + gi * scale;
        b[i] = bi;
        float d = nesterov ? gi + bi * mu : bi;
        p[i] = p[i] * shrink - d * lr;
    }
}

void swift_sgd_f32(float *p, const float *g, float *b, int64_t n, float lr, float momentum, float weight_decay,
                   float keep, float scale, int flags, int threads) {
    Rule r = rule_of(p, g, b, NULL, NULL, NULL, flags);
    float k[] = {lr, momentum, weight_decay, keep, scale};
    memcpy(r.k, k, sizeof(k));
    run_split(sgd_range, &r, n, threads);
}

/* ------------------------------------------------------------------------------------------------------------
 * adopt/adopt.py::adopt_rule (steps after the first): g' = g + wd p (L2) or p = p (1 - lr wd) (decoupled);
 * m = b1 m + (1 - b1) clamp(g' / max(sqrt(v), eps), -clip, clip); p -= lr m (masked: m where m g' > 0, scaled);
 * v = b2 v + (1 - b2) g'^2.   k = (lr, beta1, beta2, eps, weight_decay, clip)
 * ------------------------------------------------------------------------------------------------------------ */
typedef struct {
    float lr, b1, b2, eps, wd, clip, one_minus_b1, one_minus_b2, shrink;
    int l2;
} AdoptScalars;

static AdoptScalars adopt_scalars(const Rule *r) {
    AdoptScalars s;
    int decay = r->flags & F_DECAY;
    s.lr = r->k[0], s.b1 = r->k[1], s.b2 = r->k[2], s.eps = r->k[3], s.wd = r->k[4], s.clip = r->k[5];
    s.one_minus_b1 = 1.0f - s.b1, s.one_minus_b2 = 1.0f - s.b2;
    s.l2 = decay && !(r->flags & F_DECOUPLED);
    s.shrink = decay && !s.l2 ? 1.0f - s.lr * s.wd : 1.0f;
    return s;
}

static inline float adopt_momentum(float m, float v, float g, AdoptScalars s) {
    float den = sqrtf(v);
    den = den < s.eps ? s.eps : den;
    float normed = g / den;
    normed = normed < -s.clip ? -s.clip : (normed > s.clip ? s.clip : normed);
    return m * s.b1 + normed * s.one_minus_b1;
}

enum { WHOLE_STEP, MOMENTS_AND_COUNT, MASKED_WRITE }; /* what one pass of a rule with an optional mask does */

ALWAYS_INLINE void adopt_pass(const Rule *r, int64_t i0, int64_t i1, Sums *out, int pass) {
    float *restrict p = r->p, *restrict m = r->s[0], *restrict v = r->s[1];
    const float *restrict g = r->g;
    AdoptScalars s = adopt_scalars(r);
    float scale = r->k[11];
    int64_t kept = 0;
#pragma omp simd reduction(+ : kept)
    for (int64_t i = i0; i < i1; ++i) {
        float gi = s.l2 ? g[i] + p[i] * s.wd : g[i];
        if (pass == MASKED_WRITE) { /* m is already this step's */
            float mi = m[i];
            p[i] = p[i] * s.shrink - mi * (mi * gi > 0.0f ? scale : 0.0f) * s.lr;
            v[i] = v[i] * s.b2 + gi * gi * s.one_minus_b2;
            continue;
        }
        float mi = adopt_momentum(m[i], v[i], gi, s);
        m[i] = mi;
        if (pass == MOMENTS_AND_COUNT) {
            kept += mi * gi > 0.0f;
            continue;
        }
        p[i] = p[i] * s.shrink - mi * s.lr;
        v[i] = v[i] * s.b2 + gi * gi * s.one_minus_b2;
    }
    out->count += kept;
}

MULTIVERSION static void adopt_step_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    adopt_pass(r, i0, i1, out, WHOLE_STEP);
}

MULTIVERSION static void adopt_count_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    adopt_pass(r, i0, i1, out, MOMENTS_AND_COUNT);
}

MULTIVERSION static void adopt_masked_write_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    adopt_pass(r, i0, i1, out, MASKED_WRITE);
}

void swift_adopt_f32(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                     float eps, float weight_decay, float clip, int flags, int threads) {
    Rule r = rule_of(p, g, m, v, NULL, NULL, flags);
    float k[] = {lr, beta1, beta2, eps, weight_decay, clip};
    memcpy(r.k, k, sizeof(k));
    if (!(flags & F_CAUTIOUS)) {
        run_split(adopt_step_range, &r, n, threads);
        return;
    }
    r.k[11] = kept_scale(n, run_split(adopt_count_range, &r, n, threads).count);
    run_split(adopt_masked_write_range, &r, n, threads);
}

/* ------------------------------------------------------------------------------------------------------------
 * ademamix/ademamix.py::ademamix_rule: m1 = b1 m1 + (1 - b1) g; m2 = b3 m2 + (1 - b3) g; v = b2 v + (1 - b2) g^2;
 * u = (m1 / bc1 + alpha m2) / (sqrt(v) / sqrt_bc2 + eps) (masked); p = p (1 - lr wd) - lr u.
 * k = (lr, beta1, beta2, beta3, alpha, eps, weight_decay, bc1, sqrt_bc2)
 * ------------------------------------------------------------------------------------------------------------ */
static inline float ademamix_direction(float m1, float m2, float v, const float *k) {
    return (m1 / k[7] + m2 * k[4]) / (sqrtf(v) / k[8] + k[5]);
}

/* the moments (and, with count, the kept count; no parameter write) or, with write, the whole step */
ALWAYS_INLINE void ademamix_moments(const Rule *r, int64_t i0, int64_t i1, Sums *out, int write) {
    float *restrict p = r->p, *restrict m1 = r->s[0], *restrict m2 = r->s[1], *restrict v = r->s[2];
    const float *restrict g = r->g;
    const float *k = r->k;
    float lr = k[0], b1 = k[1], b2 = k[2], b3 = k[3], shrink = r->flags & F_DECAY ? 1.0f - lr * k[6] : 1.0f;
    float one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2, one_minus_b3 = 1.0f - b3;
    int64_t kept = 0;
#pragma omp simd reduction(+ : kept)
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i];
        float a = m1[i] * b1 + gi * one_minus_b1, c = m2[i] * b3 + gi * one_minus_b3;
        float w = v[i] * b2 + gi * gi * one_minus_b2;
        m1[i] = a, m2[i] = c, v[i] = w;
        float u = ademamix_direction(a, c, w, k);
        if (write) {
            p[i] = p[i] * shrink - u * lr;
        } else {
            kept += u * gi > 0.0f;
        }
    }
    out->count += kept;
}

MULTIVERSION static void ademamix_step_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    ademamix_moments(r, i0, i1, out, 1);
}

MULTIVERSION static void ademamix_count_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    ademamix_moments(r, i0, i1, out, 0);
}

MULTIVERSION static void ademamix_masked_write_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p;
    const float *restrict g = r->g, *restrict m1 = r->s[0], *restrict m2 = r->s[1], *restrict v = r->s[2];
    const float *k = r->k;
    float lr = k[0], shrink = r->flags & F_DECAY ? 1.0f - lr * k[6] : 1.0f, scale = k[11];
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float u = ademamix_direction(m1[i], m2[i], v[i], k);
        u = u * (u * g[i] > 0.0f ? scale : 0.0f);
        p[i] = p[i] * shrink - u * lr;
    }
}

void swift_ademamix_f32(float *p, const float *g, float *m1, float *m2, float *v, int64_t n, float lr, float beta1,
                        float beta2, float beta3, float alpha, float eps, float weight_decay, float bc1,
                        float sqrt_bc2, int flags, int threads) {
    Rule r = rule_of(p, g, m1, m2, v, NULL, flags);
    float k[] = {lr, beta1, beta2, beta3, alpha, eps, weight_decay, bc1, sqrt_bc2};
    memcpy(r.k, k, sizeof(k));
    if (!(flags & F_CAUTIOUS)) {
        run_split(ademamix_step_range, &r, n, threads);
        return;
    }
    r.k[11] = kept_scale(n, run_split(ademamix_count_range, &r, n, threads).count);
    run_split(ademamix_masked_write_range, &r, n, threads);
}

/* ------------------------------------------------------------------------------------------------------------
 * adan/adan.py::adan_rule: d = g - g_prev; m = b1 m + (1 - b1) g; n = b2 n + (1 - b2) d;
 * v = b3 v + (1 - b3)(g + b2 d)^2; u = (m / bc1 + n b2 / bc2) / (sqrt(v) / sqrt_bc3 + eps);
 * p = p (1 - lr wd) - lr u (decoupled) or (p - lr u) / (1 + lr wd); g_prev = g.
 * k = (lr, beta1, beta2, beta3, eps, weight_decay, bc1, bc2, sqrt_bc3)
 * ------------------------------------------------------------------------------------------------------------ */
ALWAYS_INLINE void adan_pass(const Rule *r, int64_t i0, int64_t i1, int proximal) {
    float *restrict p = r->p, *restrict m = r->s[0], *restrict nd = r->s[1], *restrict v = r->s[2];
    float *restrict prev = r->s[3];
    const float *restrict g = r->g;
    const float *k = r->k;
    float lr = k[0], b1 = k[1], b2 = k[2], b3 = k[3], eps = k[4], wd = k[5], bc1 = k[6], sqrt_bc3 = k[8];
    float b2_over_bc2 = b2 / k[7];
    float shrink = r->flags & F_DECAY && !proximal ? 1.0f - lr * wd : 1.0f, divisor = 1.0f + lr * wd;
    float one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2, one_minus_b3 = 1.0f - b3;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i];
        float diff = gi - prev[i];
        float mi = m[i] * b1 + gi * one_minus_b1;
        float ni = nd[i] * b2 + diff * one_minus_b2;
        float nesterov = gi + diff * b2;
        float vi = v[i] * b3 + nesterov * nesterov * one_minus_b3;
        m[i] = mi, nd[i] = ni, v[i] = vi;
        float u = (mi / bc1 + ni * b2_over_bc2) / (sqrtf(vi) / sqrt_bc3 + eps);
        float pi = p[i] * shrink - u * lr;
        p[i] = proximal ? pi / divisor : pi;
        prev[i] = gi;
    }
}

MULTIVERSION static void adan_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    (void)out;
    adan_pass(r, i0, i1, 0);
}

MULTIVERSION static void adan_proximal_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    (void)out;
    adan_pass(r, i0, i1, 1);
}

void swift_adan_f32(float *p, const float *g, float *m, float *nd, float *v, float *prev, int64_t n, float lr,
                    float beta1, float beta2, float beta3, float eps, float weight_decay, float bc1, float bc2,
                    float sqrt_bc3, int flags, int threads) {
    Rule r = rule_of(p, g, m, nd, v, prev, flags);
    float k[] = {lr, beta1, beta2, beta3, eps, weight_decay, bc1, bc2, sqrt_bc3};
    memcpy(r.k, k, sizeof(k));
    int proximal = (flags & F_DECAY) && !(flags & F_DECOUPLED);
    run_split(proximal ? adan_proximal_range : adan_range, &r, n, threads);
}

/* ------------------------------------------------------------------------------------------------------------
 * mars/mars.py::mars_rule: c = g + (g - g_prev) gamma b1 / (1 - b1), c /= max(||c||, 1), g_prev = g (corrected;
 * else c = g); m = b1 m + (1 - b1) c; v = b2 v + (1 - b2) c^2; u = m / ((sqrt(v) + eps) bc1 / sqrt_bc2) (masked
 * with g); p = p (1 - lr wd) - lr u. Pass 1 (corrected) sums c^2; pass 2 the moments (and the write, or the kept
 * count); pass 3 the masked write.   k = (lr, beta1, beta2, gamma, eps, weight_decay, bc1, sqrt_bc2)
 * ------------------------------------------------------------------------------------------------------------ */
MULTIVERSION static void mars_norm_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    const float *restrict g = r->g, *restrict prev = r->s[2];
    float kc = r->k[9];
    double total = 0;
#pragma omp simd reduction(+ : total)
    for (int64_t i = i0; i < i1; ++i) {
        float c = g[i] + (g[i] - prev[i]) * kc;
        total += (double)(c * c);
    }
    out->a += total;
}

ALWAYS_INLINE void mars_moments(const Rule *r, int64_t i0, int64_t i1, Sums *out, int write) {
    float *restrict p = r->p, *restrict m = r->s[0], *restrict v = r->s[1], *restrict prev = r->s[2];
    const float *restrict g = r->g;
    const float *k = r->k;
    float lr = k[0], b1 = k[1], b2 = k[2], eps = k[4], kc = k[9], div = k[10], corr = k[6] / k[7];
    float shrink = r->flags & F_DECAY ? 1.0f - lr * k[5] : 1.0f, one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;
    int corrected = prev != NULL;
    int64_t kept = 0;
#pragma omp simd reduction(+ : kept)
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i];
        float c = corrected ? (gi + (gi - prev[i]) * kc) / div : gi;
        if (corrected) prev[i] = gi;
        float mi = m[i] * b1 + c * one_minus_b1, vi = v[i] * b2 + c * c * one_minus_b2;
        m[i] = mi, v[i] = vi;
        float u = mi / ((sqrtf(vi) + eps) * corr);
        if (write) {
            p[i] = p[i] * shrink - u * lr;
        } else {
            kept += u * gi > 0.0f;
        }
    }
    out->count += kept;
}

MULTIVERSION static void mars_step_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    mars_moments(r, i0, i1, out, 1);
}

MULTIVERSION static void mars_count_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    mars_moments(r, i0, i1, out, 0);
}

MULTIVERSION static void mars_masked_write_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p;
    const float *restrict g = r->g, *restrict m = r->s[0], *restrict v = r->s[1];
    const float *k = r->k;
    float lr = k[0], eps = k[4], corr = k[6] / k[7], scale = k[11];
    float shrink = r->flags & F_DECAY ? 1.0f - lr * k[5] : 1.0f;
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float u = m[i] / ((sqrtf(v[i]) + eps) * corr);
        u = u * (u * g[i] > 0.0f ? scale : 0.0f);
        p[i] = p[i] * shrink - u * lr;
    }
}

void swift_mars_f32(float *p, const float *g, float *m, float *v, float *prev, int64_t n, float lr, float beta1,
                    float beta2, float gamma, float eps, float weight_decay, float bc1, float sqrt_bc2, int flags,
                    int threads) {
    Rule r = rule_of(p, g, m, v, flags & F_CORRECTED ? prev : NULL, NULL, flags);
    float k[] = {lr, beta1, beta2, gamma, eps, weight_decay, bc1, sqrt_bc2};
    memcpy(r.k, k, sizeof(k));
    r.k[9] = gamma * beta1 / (1.0f - beta1);
    r.k[10] = 1.0f;
    if (flags & F_CORRECTED) {
        float norm = sqrtf((float)run_split(mars_norm_range, &r, n, threads).a);
        r.k[10] = norm < 1.0f ? 1.0f : norm;
    }
    if (!(flags & F_CAUTIOUS)) {
        run_split(mars_step_range, &r, n, threads);
        return;
    }
    r.k[11] = kept_scale(n, run_split(mars_count_range, &r, n, threads).count);
    run_split(mars_masked_write_range, &r, n, threads);
}

/* ------------------------------------------------------------------------------------------------------------
 * lamb/lamb.py::lamb_rule: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; u = (m / bc1) / (sqrt(v / bc2) + eps)
 * (masked with g); w = u + wd p; p -= lr w min(||p||, max_norm) / ||w|| (1 where a norm is 0).
 * Pass 1 updates the moments and sums ||p||^2 and ||w||^2; with the mask (whose scale needs the kept count) it
 * sums ||p||^2, sum_kept u^2 and sum_kept u p instead, and ||w||^2 = s^2 A + 2 s wd B + wd^2 ||p||^2.
 * k = (lr, beta1, beta2, eps, weight_decay, bc1, bc2, max_norm)
 * ------------------------------------------------------------------------------------------------------------ */
static inline float lamb_direction(float m, float v, const float *k) { return (m / k[5]) / (sqrtf(v / k[6]) + k[3]); }

ALWAYS_INLINE void lamb_moments(const Rule *r, int64_t i0, int64_t i1, Sums *out, int masked) {
    const float *restrict p = r->p, *restrict g = r->g;
    float *restrict m = r->s[0], *restrict v = r->s[1];
    const float *k = r->k;
    float b1 = k[1], b2 = k[2], wd = k[4], one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;
    double sa = 0, sb = 0, sc = 0;
    int64_t kept = 0;
#pragma omp simd reduction(+ : sa, sb, sc, kept)
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i], pi = p[i];
        float mi = m[i] * b1 + gi * one_minus_b1, vi = v[i] * b2 + gi * gi * one_minus_b2;
        m[i] = mi, v[i] = vi;
        float u = lamb_direction(mi, vi, k);
        sa += (double)(pi * pi);
        if (masked) {
            float kept_u = u * gi > 0.0f ? u : 0.0f;
            kept += u * gi > 0.0f;
            sb += (double)kept_u * (double)kept_u;
            sc += (double)kept_u * (double)pi;
        } else {
            float w = u + pi * wd;
            sb += (double)(w * w);
        }
    }
    out->a += sa, out->b += sb, out->c += sc, out->count += kept;
}

MULTIVERSION static void lamb_moments_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    lamb_moments(r, i0, i1, out, 0);
}

MULTIVERSION static void lamb_masked_moments_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    lamb_moments(r, i0, i1, out, 1);
}

MULTIVERSION static void lamb_write_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p;
    const float *restrict g = r->g, *restrict m = r->s[0], *restrict v = r->s[1];
    const float *k = r->k;
    float wd = k[4], step = k[10], scale = k[11];
    int masked = r->flags & F_CAUTIOUS;
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float u = lamb_direction(m[i], v[i], k);
        if (masked) u = u * (u * g[i] > 0.0f ? scale : 0.0f);
        float w = u + p[i] * wd;
        p[i] = p[i] - w * step;
    }
}

void swift_lamb_f32(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1, float beta2,
                    float eps, float weight_decay, float bc1, float bc2, float max_norm, int flags, int threads) {
    Rule r = rule_of(p, g, m, v, NULL, NULL, flags);
    float k[] = {lr, beta1, beta2, eps, weight_decay, bc1, bc2, max_norm};
    memcpy(r.k, k, sizeof(k));
    Sums sums = run_split(flags & F_CAUTIOUS ? lamb_masked_moments_range : lamb_moments_range, &r, n, threads);
    double update_sq = sums.b;
    if (flags & F_CAUTIOUS) {
        double s = kept_scale(n, sums.count), wd = weight_decay;
        update_sq = s * s * sums.b + 2.0 * s * wd * sums.c + wd * wd * sums.a;
        r.k[11] = (float)s;
    }
    float weight_norm = sqrtf((float)sums.a), update_norm = sqrtf((float)(update_sq > 0 ? update_sq : 0));
    weight_norm = weight_norm > max_norm ? max_norm : weight_norm;
    float ratio = weight_norm > 0.0f && update_norm > 0.0f ? weight_norm / update_norm : 1.0f;
    r.k[10] = ratio * lr;
    run_split(lamb_write_range, &r, n, threads);
}

/* ------------------------------------------------------------------------------------------------------------
 * stable_adamw/stable_adamw.py::stable_adamw_rule: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2 (debiased betas);
 * step = lr / max(1, sqrt(mean(g^2 / max(v, eps^2)))); p = p (1 - step wd) - step m / (sqrt(v) + eps).
 * k = (lr, beta1, beta2, eps, weight_decay)
 * ------------------------------------------------------------------------------------------------------------ */
MULTIVERSION static void stable_adamw_moments_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    const float *restrict g = r->g;
    float *restrict m = r->s[0], *restrict v = r->s[1];
    float b1 = r->k[1], b2 = r->k[2], eps = r->k[3], floor_v = eps * eps;
    float one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;
    double total = 0;
#pragma omp simd reduction(+ : total)
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i];
        float mi = m[i] * b1 + gi * one_minus_b1, vi = v[i] * b2 + gi * gi * one_minus_b2;
        m[i] = mi, v[i] = vi;
        total += (double)(gi * gi / (vi < floor_v ? floor_v : vi));
    }
    out->a += total;
}

MULTIVERSION static void stable_adamw_write_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p;
    const float *restrict m = r->s[0], *restrict v = r->s[1];
    float eps = r->k[3], step = r->k[10], shrink = r->k[11];
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) p[i] = p[i] * shrink - m[i] / (sqrtf(v[i]) + eps) * step;
}

void swift_stable_adamw_f32(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
                            float beta2, float eps, float weight_decay, int flags, int threads) {
    Rule r = rule_of(p, g, m, v, NULL, NULL, flags);
    float k[] = {lr, beta1, beta2, eps, weight_decay};
    memcpy(r.k, k, sizeof(k));
    float rms = sqrtf((float)(run_split(stable_adamw_moments_range, &r, n, threads).a / (double)n));
    float step = lr / (rms < 1.0f ? 1.0f : rms);
    r.k[10] = step;
    r.k[11] = flags & F_DECAY ? 1.0f - step * weight_decay : 1.0f;
    run_split(stable_adamw_write_range, &r, n, threads);
}

/* ------------------------------------------------------------------------------------------------------------
 * prodigy/prodigy.py::prodigy_statistics_rule: dot = <g, p0 - p>; m = b1 m + m_rate g; v = b2 v + v_rate g^2;
 * s = b3 s + s_rate g; out = (numerator_scale dot, ||s||_1).
 * k = (numerator_scale, beta1, beta2, beta3, m_rate, v_rate, s_rate)
 * prodigy_update_rule: p = p (1 - decay_rate) - dlr m / (sqrt(v) + d_eps).   k = (dlr, d_eps, decay_rate)
 * ------------------------------------------------------------------------------------------------------------ */
MULTIVERSION static void prodigy_statistics_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    const float *restrict p = r->p, *restrict g = r->g, *restrict p0 = r->s[3];
    float *restrict m = r->s[0], *restrict v = r->s[1], *restrict s = r->s[2];
    float b1 = r->k[1], b2 = r->k[2], b3 = r->k[3], m_rate = r->k[4], v_rate = r->k[5], s_rate = r->k[6];
    double dot = 0, l1 = 0;
#pragma omp simd reduction(+ : dot, l1)
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i];
        dot += (double)(gi * (p0[i] - p[i]));
        m[i] = m[i] * b1 + gi * m_rate;
        v[i] = v[i] * b2 + gi * gi * v_rate;
        float si = s[i] * b3 + gi * s_rate;
        s[i] = si;
        l1 += (double)fabsf(si);
    }
    out->a += dot, out->b += l1;
}

void swift_prodigy_statistics_f32(float *p, const float *g, float *m, float *v, float *s, float *p0, int64_t n,
                                  float numerator_scale, float beta1, float beta2, float beta3, float m_rate,
                                  float v_rate, float s_rate, double *out, int threads) {
    Rule r = rule_of(p, g, m, v, s, p0, 0);
    float k[] = {numerator_scale, beta1, beta2, beta3, m_rate, v_rate, s_rate};
    memcpy(r.k, k, sizeof(k));
    Sums sums = run_split(prodigy_statistics_range, &r, n, threads);
    out[0] = sums.a * (double)numerator_scale;
    out[1] = sums.b;
}

MULTIVERSION static void prodigy_update_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p;
    const float *restrict m = r->s[0], *restrict v = r->s[1];
    float dlr = r->k[0], d_eps = r->k[1], shrink = r->flags & F_DECAY ? 1.0f - r->k[2] : 1.0f;
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) p[i] = p[i] * shrink - m[i] / (sqrtf(v[i]) + d_eps) * dlr;
}

void swift_prodigy_update_f32(float *p, float *m, float *v, int64_t n, float dlr, float d_eps, float decay_rate,
                              int flags, int threads) {
    Rule r = rule_of(p, NULL, m, v, NULL, NULL, flags);
    float k[] = {dlr, d_eps, decay_rate};
    memcpy(r.k, k, sizeof(k));
    run_split(prodigy_update_range, &r, n, threads);
}

/* ------------------------------------------------------------------------------------------------------------
 * _cautious_rules.py::cautious_adamw_rule: p = p (1 - lr wd); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * u = (m / bc1) / (sqrt(v) / sqrt_bc2 + eps); p -= lr u where u g > 0, scaled by numel / (kept + 1).
 * Pass 1 the moments and the kept count, pass 2 the write.   k = (lr, beta1, beta2, eps, weight_decay, bc1, sqrt_bc2)
 * ------------------------------------------------------------------------------------------------------------ */
static inline float adam_direction(float m, float v, const float *k) { return (m / k[5]) / (sqrtf(v) / k[6] + k[3]); }

MULTIVERSION static void cautious_adamw_moments_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    const float *restrict g = r->g;
    float *restrict m = r->s[0], *restrict v = r->s[1];
    const float *k = r->k;
    float b1 = k[1], b2 = k[2], one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;
    int64_t kept = 0;
#pragma omp simd reduction(+ : kept)
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i];
        float mi = m[i] * b1 + gi * one_minus_b1, vi = v[i] * b2 + gi * gi * one_minus_b2;
        m[i] = mi, v[i] = vi;
        kept += adam_direction(mi, vi, k) * gi > 0.0f;
    }
    out->count += kept;
}

MULTIVERSION static void cautious_adamw_write_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p;
    const float *restrict g = r->g, *restrict m = r->s[0], *restrict v = r->s[1];
    const float *k = r->k;
    float lr = k[0], shrink = 1.0f - lr * k[4], scale = k[11];
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float u = adam_direction(m[i], v[i], k);
        p[i] = p[i] * shrink - u * (u * g[i] > 0.0f ? scale : 0.0f) * lr;
    }
}

void swift_cautious_adamw_f32(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
                              float beta2, float eps, float weight_decay, float bc1, float sqrt_bc2, int threads) {
    Rule r = rule_of(p, g, m, v, NULL, NULL, F_CAUTIOUS);
    float k[] = {lr, beta1, beta2, eps, weight_decay, bc1, sqrt_bc2};
    memcpy(r.k, k, sizeof(k));
    r.k[11] = kept_scale(n, run_split(cautious_adamw_moments_range, &r, n, threads).count);
    run_split(cautious_adamw_write_range, &r, n, threads);
}

/* _cautious_rules.py::cautious_lion_rule: u = sign(b1 m + (1 - b1) g); p = p (1 - lr wd) - lr u (where u g > 0,
 * scaled); m = b2 m + (1 - b2) g. Pass 1 counts (reads m and g), pass 2 writes.   k = (lr, beta1, beta2, wd) */
static inline float lion_sign(float m, float g, float b1, float one_minus_b1) {
    float c = m * b1 + g * one_minus_b1;
    return (float)((c > 0.0f) - (c < 0.0f));
}

MULTIVERSION static void cautious_lion_count_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    const float *restrict g = r->g, *restrict m = r->s[0];
    float b1 = r->k[1], one_minus_b1 = 1.0f - b1;
    int64_t kept = 0;
#pragma omp simd reduction(+ : kept)
    for (int64_t i = i0; i < i1; ++i) kept += lion_sign(m[i], g[i], b1, one_minus_b1) * g[i] > 0.0f;
    out->count += kept;
}

MULTIVERSION static void cautious_lion_write_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p, *restrict m = r->s[0];
    const float *restrict g = r->g;
    float lr = r->k[0], b1 = r->k[1], b2 = r->k[2], shrink = 1.0f - lr * r->k[3], scale = r->k[11];
    float one_minus_b1 = 1.0f - b1, one_minus_b2 = 1.0f - b2;
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i];
        float u = lion_sign(m[i], gi, b1, one_minus_b1);
        p[i] = p[i] * shrink - u * (u * gi > 0.0f ? scale : 0.0f) * lr;
        m[i] = m[i] * b2 + gi * one_minus_b2;
    }
}

void swift_cautious_lion_f32(float *p, const float *g, float *m, int64_t n, float lr, float beta1, float beta2,
                             float weight_decay, int threads) {
    Rule r = rule_of(p, g, m, NULL, NULL, NULL, F_CAUTIOUS);
    float k[] = {lr, beta1, beta2, weight_decay};
    memcpy(r.k, k, sizeof(k));
    r.k[11] = kept_scale(n, run_split(cautious_lion_count_range, &r, n, threads).count);
    run_split(cautious_lion_write_range, &r, n, threads);
}
