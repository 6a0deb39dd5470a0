/* What every C source of the native kernels shares (swift_optim_zoo/_native.py compiles them into one library):
 * headers, the multi-versioning attribute, and how a parallel region splits its work. */
#ifndef SWIFT_NATIVE_COMMON_H
#define SWIFT_NATIVE_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* sqrtf without errno: lets the square-root loops vectorise (no value here is negative). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-math-errno")
#endif

/* x86-64: one build, the widest vector instructions the running CPU has (no -march=native, so a
 * cached library stays valid on another machine that shares the cache). */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef MULTIVERSION
#define MULTIVERSION
#endif

/* a helper inlined into each multi-versioned caller (so it is compiled for that caller's instructions, with the
 * caller's constant arguments folded in) */
#if defined(__GNUC__)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE static inline
#endif

#define LANES 16     /* one vector register of floats per accumulator */

static inline int thread_count(int requested) {
#ifdef _OPENMP
    return requested > 0 ? requested : 1;
#else
    (void)requested;
    return 1;
#endif
}

/* Inside a parallel region: this thread's share [*r0, *r1) of `rows` rows; returns its index, *team the team size. */
static inline int team_share(int64_t rows, int64_t *r0, int64_t *r1, int *team) {
    int t = 0;
    *team = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    *team = omp_get_num_threads();
#endif
    *r0 = rows * t / *team;
    *r1 = rows * (t + 1) / *team;
    return t;
}

/* ---- a rule's pass over [0, n), split over threads: what the per-tensor rule kernels share ---- */

#define MAX_TEAM 256
#define MIN_SHARE 32768 /* elements per thread below which a tensor is not split further (a region costs ~us) */

/* The team size for `threads` threads, at most MAX_TEAM (the room of the per-thread arrays below). */
static inline int team_size(int threads) {
    int nt = thread_count(threads);
    return nt > MAX_TEAM ? MAX_TEAM : nt;
}

/* The per-thread partial sums of a parallel region (parts[t] from thread t, 0 where a thread did not run), added
 * in thread order after it. An OpenMP reduction adds them in the order the threads finish: on three or more
 * threads its last bits change from run to run. */
static inline double thread_order_sum(const double *parts, int team) {
    double total = 0;
    for (int t = 0; t < team; ++t) total += parts[t];
    return total;
}

typedef struct {
    float *p;       /* the parameter (updated in place) */
    const float *g; /* its gradient */
    float *s[4];    /* the rule's state tensors, in the order of its Python signature */
    float k[12];    /* the rule's scalars, in the order of its Python hyper tuple, then derived ones */
    int flags;
} Rule;

typedef struct {
    double a, b, c;
    int64_t count;
} Sums;

typedef void (*RangeFn)(const Rule *, int64_t, int64_t, Sums *);

/* fn over [0, n), split over up to `threads` threads; the per-thread sums added in thread order. */
static inline Sums run_split(RangeFn fn, const Rule *rule, int64_t n, int threads) {
    Sums parts[MAX_TEAM];
    int64_t most = n / MIN_SHARE > 1 ? n / MIN_SHARE : 1;
    int nt = thread_count(threads);
    nt = nt > MAX_TEAM ? MAX_TEAM : nt;
    nt = (int64_t)nt > most ? (int)most : nt;
    memset(parts, 0, sizeof(parts[0]) * (size_t)nt);
    int used = 1;
    if (nt == 1) {
        fn(rule, 0, n, &parts[0]);
    } else {
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
        {
            int64_t i0, i1;
            int team, t = team_share(n, &i0, &i1, &team);
            if (t == 0) used = team;
            fn(rule, i0, i1, &parts[t]);
        }
    }
    Sums total = {0, 0, 0, 0};
    for (int t = 0; t < used; ++t) {
        total.a += parts[t].a;
        total.b += parts[t].b;
        total.c += parts[t].c;
        total.count += parts[t].count;
    }
    return total;
}

#endif
