/* Memory-bound reductions of squares over a row-major float32 matrix, for the fused optimizer steps
 * (Adafactor's row/column statistics and update RMS, APOLLO's channel norms). One read of the matrix
 * each, split over OpenMP threads by rows. ATen has no single op for these: it needs a full-size
 * square in memory and then one reduction per direction (its column reduction is also slow on CPU).
 *
 * Built on first use by swift_optim_zoo/_native.py (plain C, no Python or torch headers), loaded with
 * ctypes. Sums run in float over short stretches (16 lanes per row, blocks of 128 rows per column)
 * and in double beyond, so a column of thousands of rows keeps float32's precision.
 */
#include "_native_common.h"

#define ROWS 4       /* rows read side by side: four streams per core keep its memory pipeline full (measured 1.6x) */
#define FLUSH_ROWS 128 /* column sums gather this many rows in float, then move to double */

/* sum_j x_j^2 * w_j (w NULL: 1) for ROWS rows of x at stride `cols`, into totals[0..ROWS). */
MULTIVERSION static void block_weighted_square_sums(const float *restrict x, int64_t cols, const float *restrict w,
                                                    int rows, double *restrict totals) {
    float lane[ROWS][LANES] = {{0}};
    int64_t j = 0;
    for (; j + LANES <= cols; j += LANES) {
        for (int r = 0; r < rows; ++r) {
            const float *restrict row = x + r * cols + j;
            if (w) {
#pragma omp simd
                for (int k = 0; k < LANES; ++k) lane[r][k] += row[k] * row[k] * w[j + k];
            } else {
#pragma omp simd
                for (int k = 0; k < LANES; ++k) lane[r][k] += row[k] * row[k];
            }
        }
    }
    for (int r = 0; r < rows; ++r) {
        double total = 0;
        for (int64_t tail = j; tail < cols; ++tail) {
            float v = x[r * cols + tail];
            total += w ? v * v * w[tail] : v * v;
        }
        for (int k = 0; k < LANES; ++k) total += lane[r][k];
        totals[r] = total;
    }
}

/* col_block[j] += sum over `rows` rows of x_ij^2 (rows <= ROWS). */
MULTIVERSION static void block_column_square_sums(const float *restrict x, int64_t cols, int rows,
                                                  float *restrict col_block) {
    if (rows == ROWS) {
#pragma omp simd
        for (int64_t j = 0; j < cols; ++j) {
            float a = x[j], b = x[cols + j], c = x[2 * cols + j], d = x[3 * cols + j];
            col_block[j] += (a * a + b * b) + (c * c + d * d);
        }
        return;
    }
    for (int r = 0; r < rows; ++r) {
#pragma omp simd
        for (int64_t j = 0; j < cols; ++j) col_block[j] += x[r * cols + j] * x[r * cols + j];
    }
}

/* Rows [r0, r1): row_sums[i] = sum_j g_ij^2, col_acc[j] += sum_i g_ij^2 (col_block: cols floats of room);
 * returns sum_ij extra_ij^2 over the same rows of `extra` (same shape as g; 0 if NULL). */
static double row_range_square_sums(const float *g, const float *extra, int64_t cols, int64_t r0, int64_t r1,
                                    float *row_sums, double *col_acc, float *col_block) {
    double extra_total = 0, totals[ROWS];
    for (int64_t b0 = r0; b0 < r1; b0 += FLUSH_ROWS) {
        int64_t b1 = b0 + FLUSH_ROWS < r1 ? b0 + FLUSH_ROWS : r1;
        memset(col_block, 0, sizeof(float) * (size_t)cols);
        for (int64_t i = b0; i < b1; i += ROWS) {
            int rows = b1 - i < ROWS ? (int)(b1 - i) : ROWS;
            block_weighted_square_sums(g + i * cols, cols, NULL, rows, totals);
            for (int r = 0; r < rows; ++r) row_sums[i + r] = (float)totals[r];
            block_column_square_sums(g + i * cols, cols, rows, col_block);
            if (extra) {
                block_weighted_square_sums(extra + i * cols, cols, NULL, rows, totals);
                for (int r = 0; r < rows; ++r) extra_total += totals[r];
            }
        }
        for (int64_t j = 0; j < cols; ++j) col_acc[j] += col_block[j];
    }
    return extra_total;
}

/* sum over rows [r0, r1) of row_weights[i] * sum_j g_ij^2 col_weights[j]. */
static double row_range_weighted_square_sum(const float *g, int64_t cols, int64_t r0, int64_t r1,
                                            const float *row_weights, const float *col_weights) {
    double out = 0, totals[ROWS];
    for (int64_t i = r0; i < r1; i += ROWS) {
        int rows = r1 - i < ROWS ? (int)(r1 - i) : ROWS;
        block_weighted_square_sums(g + i * cols, cols, col_weights, rows, totals);
        for (int r = 0; r < rows; ++r) out += (double)row_weights[i + r] * totals[r];
    }
    return out;
}

/* The write of one element of row r (scale s_r, column scale w): u = g * s_r * w; with momentum m = beta1 m + u,
 * u = m; then p = p * decay - u. */
#define PLAIN_WRITE(r) p##r[j] = p##r[j] * decay - g##r[j] * s##r * w
#define MOMENTUM_WRITE(r)                                                                                      \
    do {                                                                                                      \
        float m = m##r[j] * beta1 + g##r[j] * s##r * w;                                                       \
        m##r[j] = m;                                                                                          \
        p##r[j] = p##r[j] * decay - m;                                                                        \
    } while (0)

#define FOUR_ROWS(WRITE) \
    do {                 \
        WRITE(0);        \
        WRITE(1);        \
        WRITE(2);        \
        WRITE(3);        \
    } while (0)

/* Rows [r0, r1) of the factored write, four rows side by side (as above; measured 1.3x over row by row).
 * Momentum or not is decided outside the loops, so each loop vectorises on its own. */
MULTIVERSION static void row_range_factored_write(float *restrict p, const float *restrict g,
                                                  const float *restrict row_scale, const float *restrict col_scale,
                                                  int64_t cols, int64_t r0, int64_t r1, float decay,
                                                  float *restrict exp_avg, float beta1) {
    int64_t i = r0;
    for (; i + ROWS <= r1; i += ROWS) {
        float *restrict p0 = p + i * cols, *restrict p1 = p0 + cols, *restrict p2 = p1 + cols, *restrict p3 = p2 + cols;
        const float *restrict g0 = g + i * cols, *restrict g1 = g0 + cols, *restrict g2 = g1 + cols,
                    *restrict g3 = g2 + cols;
        float s0 = row_scale[i], s1 = row_scale[i + 1], s2 = row_scale[i + 2], s3 = row_scale[i + 3];
        if (exp_avg) {
            float *restrict m0 = exp_avg + i * cols, *restrict m1 = m0 + cols, *restrict m2 = m1 + cols,
                  *restrict m3 = m2 + cols;
#pragma omp simd
            for (int64_t j = 0; j < cols; ++j) {
                float w = col_scale[j];
                FOUR_ROWS(MOMENTUM_WRITE);
            }
        } else {
#pragma omp simd
            for (int64_t j = 0; j < cols; ++j) {
                float w = col_scale[j];
                FOUR_ROWS(PLAIN_WRITE);
            }
        }
    }
    for (; i < r1; ++i) {
        float *restrict p0 = p + i * cols;
        const float *restrict g0 = g + i * cols;
        float s0 = row_scale[i];
        if (exp_avg) {
            float *restrict m0 = exp_avg + i * cols;
            for (int64_t j = 0; j < cols; ++j) {
                float w = col_scale[j];
                MOMENTUM_WRITE(0);
            }
        } else {
            for (int64_t j = 0; j < cols; ++j) {
                float w = col_scale[j];
                PLAIN_WRITE(0);
            }
        }
    }
}

/* row_sums[i] = sum_j g_ij^2 and col_sums[j] = sum_i g_ij^2 of a rows x cols matrix; returns sum_ij extra_ij^2
 * of a second matrix of the same shape read in the same pass (0 if extra is NULL). scratch: room for
 * threads * cols doubles and threads * cols floats. */
double swift_square_sums_f32(const float *g, const float *extra, int64_t rows, int64_t cols, float *row_sums,
                             float *col_sums, double *scratch, int threads) {
    int nt = team_size(threads);
    double extra_parts[MAX_TEAM] = {0};
    memset(scratch, 0, sizeof(double) * (size_t)nt * (size_t)cols);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        int64_t r0, r1;
        int team, t = team_share(rows, &r0, &r1, &team);
        float *col_block = (float *)(scratch + (int64_t)nt * cols) + (int64_t)t * cols;
        extra_parts[t] = row_range_square_sums(g, extra, cols, r0, r1, row_sums, scratch + (int64_t)t * cols, col_block);
#ifdef _OPENMP
#pragma omp barrier
#pragma omp for
#endif
        for (int64_t j = 0; j < cols; ++j) {
            double s = 0;
            for (int u = 0; u < team; ++u) s += scratch[(int64_t)u * cols + j];
            col_sums[j] = (float)s;
        }
    }
    return thread_order_sum(extra_parts, nt);
}

/* sum_ij row_weights[i] g_ij^2 col_weights[j]. */
double swift_weighted_square_sum_f32(const float *g, int64_t rows, int64_t cols, const float *row_weights,
                                     const float *col_weights, int threads) {
    int nt = team_size(threads);
    double parts[MAX_TEAM] = {0};
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        int64_t r0, r1;
        int team, t = team_share(rows, &r0, &r1, &team);
        parts[t] = row_range_weighted_square_sum(g, cols, r0, r1, row_weights, col_weights);
    }
    return thread_order_sum(parts, nt);
}

/* Adafactor's parameter write for a factored matrix (everything scalar already folded into row_scale):
 * p = p * decay - g * row_scale col_scale^T, through exp_avg = beta1 exp_avg + (...) when exp_avg is given. */
void swift_factored_write_f32(float *p, const float *g, const float *row_scale, const float *col_scale, int64_t rows,
                              int64_t cols, float decay, float *exp_avg, float beta1, int threads) {
    (void)threads; /* unused without OpenMP */
#ifdef _OPENMP
#pragma omp parallel num_threads(thread_count(threads))
#endif
    {
        int64_t r0, r1;
        int team;
        team_share(rows, &r0, &r1, &team);
        row_range_factored_write(p, g, row_scale, col_scale, cols, r0, r1, decay, exp_avg, beta1);
    }
}

/* ---------------------------------------------------------------------------------------------------------
 * Whole per-tensor update rules of the element-wise optimizers (fused=True on float32 CPU tensors), in place
 * of the torch.compile'd loops of swift_optim_zoo/_fused.py: the same arithmetic in float32, one pass over
 * memory (two where a reduction must finish first), and no compilation at run time beyond this file's build
 * (about a second, once per machine), where inductor takes 10-60 s cold. Each mirrors a Python rule named
 * in its comment; hyperparameters arrive as floats, as the compiled rules receive them (a float32 tensor).
 * Passes split over threads as run_split does (_native_common.h: one thread for a small tensor); partial sums
 * of several threads are added in thread order (thread_order_sum), so a thread count gives the same bits on
 * every run.
 * --------------------------------------------------------------------------------------------------------- */

/* lion/lion.py::_lion_rule: p = p (1 - lr wd) - lr sign(b1 m + (1 - b1) g); m = b2 m + (1 - b2) g.
 * k = (lr, beta1, beta2, 1 - lr wd) */
MULTIVERSION static void lion_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict p = r->p, *restrict m = r->s[0];
    const float *restrict g = r->g;
    float lr = r->k[0], beta1 = r->k[1], beta2 = r->k[2], decay = r->k[3];
    float one_minus_b1 = 1.0f - beta1, one_minus_b2 = 1.0f - beta2;
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float c = m[i] * beta1 + g[i] * one_minus_b1;
        float s = (c > 0.0f) - (c < 0.0f);
        p[i] = p[i] * decay - s * lr;
        m[i] = m[i] * beta2 + g[i] * one_minus_b2;
    }
}

void swift_lion_f32(float *p, const float *g, float *m, int64_t n, float lr, float beta1, float beta2,
                    float weight_decay, int threads) {
    Rule r;
    memset(&r, 0, sizeof(r));
    r.p = p, r.g = g, r.s[0] = m;
    float k[] = {lr, beta1, beta2, 1.0f - lr * weight_decay};
    memcpy(r.k, k, sizeof(k));
    run_split(lion_range, &r, n, threads);
}

/* schedule_free/adamw.py::_schedule_free_rule: v = b2 v + (1 - b2) g^2; u = g / (sqrt(v / bc2) + eps) + wd y;
 * y = lerp(y, z, ckp1) (torch's two-sided form); y += u lr (b1 (1 - ckp1) - 1); z -= u lr.
 * y is the Rule's p, s = (z, v); k = (lr, beta2, eps, bc2, weight_decay, ckp1, lr (b1 (1 - ckp1) - 1)) */
MULTIVERSION static void schedule_free_range(const Rule *r, int64_t i0, int64_t i1, Sums *out) {
    float *restrict y = r->p, *restrict z = r->s[0], *restrict v = r->s[1];
    const float *restrict g = r->g;
    float lr = r->k[0], beta2 = r->k[1], eps = r->k[2], bc2 = r->k[3], weight_decay = r->k[4], ckp1 = r->k[5];
    float y_scale = r->k[6], one_minus_b2 = 1.0f - beta2, one_minus_ckp1 = 1.0f - ckp1;
    int low = ckp1 < 0.5f;
    (void)out;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float gi = g[i];
        float vi = v[i] * beta2 + gi * gi * one_minus_b2;
        v[i] = vi;
        float yi = y[i], zi = z[i];
        float u = gi / (sqrtf(vi / bc2) + eps) + yi * weight_decay;
        float diff = zi - yi;
        float moved = low ? yi + diff * ckp1 : zi - diff * one_minus_ckp1;
        y[i] = moved + u * y_scale;
        z[i] = zi - u * lr;
    }
}

void swift_schedule_free_f32(float *y, const float *g, float *z, float *v, int64_t n, float lr, float beta1,
                             float beta2, float eps, float bc2, float weight_decay, float ckp1, int threads) {
    Rule r;
    memset(&r, 0, sizeof(r));
    r.p = y, r.g = g, r.s[0] = z, r.s[1] = v;
    float k[] = {lr, beta2, eps, bc2, weight_decay, ckp1, lr * (beta1 * (1.0f - ckp1) - 1.0f)};
    memcpy(r.k, k, sizeof(k));
    run_split(schedule_free_range, &r, n, threads);
}

/* adam_mini/adam_mini.py::_adam_mini_rule on a [blocks, size] tensor, one second moment per block:
 * m = b1 m + (1 - b1) g; v_b = b2 v_b + (1 - b2) mean_b(g^2); p = p (1 - lr wd) - m (lr / c1) / (sqrt(v_b / c2) + eps).
 * A block is read twice (its sum of squares, then the write) while it is still in cache. */
MULTIVERSION static float block_mean_square(const float *restrict g, int64_t size) {
    float lane[LANES] = {0};
    int64_t j = 0;
    for (; j + LANES <= size; j += LANES) {
#pragma omp simd
        for (int k = 0; k < LANES; ++k) lane[k] += g[j + k] * g[j + k];
    }
    double total = 0;
    for (; j < size; ++j) total += (double)g[j] * g[j];
    for (int k = 0; k < LANES; ++k) total += lane[k];
    return (float)(total / (double)size);
}

MULTIVERSION static void adam_mini_block_write(float *restrict p, const float *restrict g, float *restrict m,
                                               int64_t i0, int64_t i1, float beta1, float decay, float factor) {
    float one_minus_b1 = 1.0f - beta1;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
        float mi = m[i] * beta1 + g[i] * one_minus_b1;
        m[i] = mi;
        p[i] = p[i] * decay - mi * factor;
    }
}

static float adam_mini_block_factor(float *v, float mean_sq, float lr, float beta2, float eps, float correction1,
                                    float correction2) {
    float vb = *v * beta2 + mean_sq * (1.0f - beta2);
    *v = vb;
    return (lr / correction1) / (sqrtf(vb / correction2) + eps);
}

void swift_adam_mini_f32(float *p, const float *g, float *m, float *v, int64_t blocks, int64_t size, float lr,
                         float beta1, float beta2, float eps, float weight_decay, float correction1,
                         float correction2, int threads) {
    float decay = 1.0f - lr * weight_decay;
    int nt = team_size(threads);
    if (blocks >= 2 * (int64_t)nt) { /* many blocks (rows, heads): one block at a time per thread */
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
        for (int64_t b = 0; b < blocks; ++b) {
            int64_t off = b * size;
            float factor = adam_mini_block_factor(v + b, block_mean_square(g + off, size), lr, beta2, eps,
                                                  correction1, correction2);
            adam_mini_block_write(p + off, g + off, m + off, 0, size, beta1, decay, factor);
        }
        return;
    }
    for (int64_t b = 0; b < blocks; ++b) { /* few large blocks (a whole tensor): split each block over threads */
        int64_t off = b * size;
        double parts[MAX_TEAM] = {0};
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
            int64_t i0, i1;
            int team, t = team_share(size, &i0, &i1, &team);
            if (i1 > i0) parts[t] = (double)block_mean_square(g + off + i0, i1 - i0) * (double)(i1 - i0);
        }
        float factor = adam_mini_block_factor(v + b, (float)(thread_order_sum(parts, nt) / (double)size), lr, beta2,
                                              eps, correction1, correction2);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
            int64_t i0, i1;
            int team;
            team_share(size, &i0, &i1, &team);
            adam_mini_block_write(p + off, g + off, m + off, i0, i1, beta1, decay, factor);
        }
    }
}

/* adafactor/_fused_rule.py::_unfactored_rule (a tensor with a full second moment, 1-D parameters):
 * s = b2t s + (1 - b2t)(g^2 + eps1); u = g / sqrt(s); step = scale_parameter ? max(rms(p), eps2) size : size;
 * u *= step / max(rms(u) / clip, 1); with momentum m = b1 m + (1 - b1) u, u = m; p = p (1 - wd step) - u.
 * Pass 1 updates s and sums u^2 and p^2 (double); pass 2 writes. */
MULTIVERSION static void unfactored_sums(const float *restrict p, const float *restrict g, float *restrict s,
                                         int64_t i0, int64_t i1, float beta2t, float eps1, double *update_sq,
                                         double *param_sq) {
    float lane_u[LANES] = {0}, lane_p[LANES] = {0};
    float one_minus_b2t = 1.0f - beta2t;
    int64_t i = i0;
    for (; i + LANES <= i1; i += LANES) {
#pragma omp simd
        for (int k = 0; k < LANES; ++k) {
            float gi = g[i + k];
            float si = s[i + k] * beta2t + (gi * gi + eps1) * one_minus_b2t;
            s[i + k] = si;
            float u = gi / sqrtf(si);
            lane_u[k] += u * u;
            lane_p[k] += p[i + k] * p[i + k];
        }
    }
    double tu = 0, tp = 0;
    for (; i < i1; ++i) {
        float gi = g[i];
        float si = s[i] * beta2t + (gi * gi + eps1) * one_minus_b2t;
        s[i] = si;
        float u = gi / sqrtf(si);
        tu += (double)u * u;
        tp += (double)p[i] * p[i];
    }
    for (int k = 0; k < LANES; ++k) {
        tu += lane_u[k];
        tp += lane_p[k];
    }
    *update_sq += tu;
    *param_sq += tp;
}

MULTIVERSION static void unfactored_write(float *restrict p, const float *restrict g, const float *restrict s,
                                          float *restrict m, int64_t i0, int64_t i1, float factor, float decay,
                                          float beta1) {
    if (m) {
        float one_minus_b1 = 1.0f - beta1;
#pragma omp simd
        for (int64_t i = i0; i < i1; ++i) {
            float mi = m[i] * beta1 + (g[i] / sqrtf(s[i])) * factor * one_minus_b1;
            m[i] = mi;
            p[i] = p[i] * decay - mi;
        }
        return;
    }
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) p[i] = p[i] * decay - (g[i] / sqrtf(s[i])) * factor;
}

void swift_adafactor_unfactored_f32(float *p, const float *g, float *s, float *m, int64_t n, float size, float eps2,
                                    float beta2t, float eps1, float clip_threshold, float weight_decay, float beta1,
                                    int scale_parameter, int threads) {
    double update_parts[MAX_TEAM] = {0}, param_parts[MAX_TEAM] = {0};
    int nt = team_size(threads);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        int64_t i0, i1;
        int team, t = team_share(n, &i0, &i1, &team);
        unfactored_sums(p, g, s, i0, i1, beta2t, eps1, &update_parts[t], &param_parts[t]);
    }
    double update_sq = thread_order_sum(update_parts, nt), param_sq = thread_order_sum(param_parts, nt);
    float step = size;
    if (scale_parameter) {
        float rms = sqrtf((float)(param_sq / (double)n));
        step = (rms > eps2 ? rms : eps2) * size;
    }
    float clip = sqrtf((float)(update_sq / (double)n)) / clip_threshold;
    float factor = step / (clip > 1.0f ? clip : 1.0f);
    float decay = 1.0f - weight_decay * step;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        int64_t i0, i1;
        int team;
        team_share(n, &i0, &i1, &team);
        unfactored_write(p, g, s, m, i0, i1, factor, decay, beta1);
    }
}
