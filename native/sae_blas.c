/*
 * sae_blas: single-precision matrix products through the machine's BLAS, for tfjs-wasm's heap.
 *
 * sgemm(transA, transB, m, n, k, alpha, A, aOff, lda, strideA, B, bOff, ldb, strideB, beta, C, cOff, ldc, strideC, batch)
 *   For i in [0, batch): C_i = alpha · op(A_i) · op(B_i) + beta · C_i, row-major, where X_i starts at byte xOff + 4·i·strideX
 *   of X (an ArrayBuffer or a typed array; a typed array's own byteOffset is added). A stride of 0 reuses the same matrix
 *   (broadcasting). Zero-copy: the BLAS reads and writes the given memory. Every matrix's extent is checked against its
 *   buffer first, so bad arguments throw a RangeError instead of touching memory outside it.
 * setNumThreads(n), getNumThreads(): the threads that share a product's tiles (run_tiles: results do not depend on them).
 * info() → { name, version, config, core }
 *
 * Node-API only (ABI-stable across Node versions); the Node-API symbols resolve against the node binary at load time.
 * BLAS prototypes are declared here, not included, so only the library is needed to build (Debian's libopenblas0
 * without -dev works too), and so a netlib cblas.h on the include path cannot mismatch them.
 */
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __APPLE__
/* Accelerate: CBLAS with its own enum values (same numbers as the reference CBLAS). Its own threads are not switched off here (untested; set VECLIB_MAXIMUM_THREADS=1 for thread-count-independent results). */
#include <Accelerate/Accelerate.h>
#define ROW_MAJOR CblasRowMajor
#define NO_TRANS CblasNoTrans
#define TRANS CblasTrans
#define SGEMM(o, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc) cblas_sgemm(o, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc)
#define SGEMV(o, t, m, n, al, a, lda, x, incx, be, y, incy) cblas_sgemv(o, t, m, n, al, a, lda, x, incx, be, y, incy)
static void blas_single_thread(void) {}
static const char *blas_name(void) { return "Accelerate"; }
static const char *blas_config(void) { return "Accelerate (vecLib; threads via VECLIB_MAXIMUM_THREADS)"; }
static const char *blas_core(void) { return ""; }
#else
/* OpenBLAS. The CBLAS enums are plain ints (101 row-major, 111 no-trans, 112 trans) in every CBLAS ABI. */
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
void cblas_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda, const float *x, int incx,
                 float beta, float *y, int incy);
void openblas_set_num_threads(int n);
char *openblas_get_config(void);
char *openblas_get_corename(void);
#define ROW_MAJOR 101
#define NO_TRANS 111
#define TRANS 112
#define SGEMM(o, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc) cblas_sgemm(o, ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc)
#define SGEMV(o, t, m, n, al, a, lda, x, incx, be, y, incy) cblas_sgemv(o, t, m, n, al, a, lda, x, incx, be, y, incy)
static void blas_single_thread(void) { openblas_set_num_threads(1); }
static const char *blas_name(void) { return "OpenBLAS"; }
static const char *blas_config(void) { return openblas_get_config(); }
static const char *blas_core(void) { return openblas_get_corename(); }
#endif

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), NULL, "sae_blas: Node-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

/* The bytes behind an ArrayBuffer or typed array (base pointer past the view's own offset, and their count). */
static int memory_of(napi_env env, napi_value v, uint8_t **data, size_t *bytes) {
  bool is;
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    void *p;
    if (napi_get_arraybuffer_info(env, v, &p, bytes) != napi_ok) return 0;
    *data = p;
    return 1;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length, offset;
    void *p;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &length, &p, &ab, &offset) != napi_ok) return 0;
    size_t total;
    void *base;
    if (napi_get_arraybuffer_info(env, ab, &base, &total) != napi_ok) return 0;
    (void)total;
    *data = p; /* already past the view's byteOffset */
    size_t elem = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: elem = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
      default: elem = 1;
    }
    *bytes = length * elem;
    return 1;
  }
  return 0;
}

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 9007199254740991.0) || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

/*
 * Checks that `batch` matrices of `rows` × `cols` (row-major, leading dimension ld ≥ cols) at byte `off`, `stride`
 * floats apart, lie inside `bytes`, and that the offset is float-aligned. Returns the float pointer or NULL.
 */
static float *matrix_at(uint8_t *data, size_t bytes, int64_t off, int64_t rows, int64_t cols, int64_t ld,
                        int64_t stride, int64_t batch) {
  if (off % 4 != 0 || ld < (cols > 1 ? cols : 1)) return NULL;
  if (rows == 0 || cols == 0) return (float *)(data + off);
  int64_t last = (batch - 1) * stride + (rows - 1) * ld + cols; /* floats from the start, exclusive end */
  if (off + 4 * last > (int64_t)bytes) return NULL;
  return (float *)(data + off);
}

/*
 * Threads. OpenBLAS's own threading splits a product differently for each thread count, and its kernels then
 * round some elements differently (measured: 350 of 1,176 shapes differed between 1 and 2 threads, OpenBLAS 0.3.21,
 * Haswell kernels), so results would depend on the machine's cores. Instead the BLAS always runs one thread per
 * call, and each product is cut into tiles that depend on its shape only; our threads take tiles from a shared
 * counter. Every element is computed by the same single-threaded call whatever the thread count: bit-identical
 * results for 1, 2 or 64 threads, by construction. Tile size: 512×1024 cost 6% at 1 thread against whole-product
 * calls and was the fastest of seven sizes tried at 2 threads (BENCHMARKS.md); fewer, larger tiles pack less but
 * leave products like [1024,768] with 2 tiles, so more threads than tiles sit idle there.
 */
#ifndef TILE_M
#define TILE_M 512           /* rows of C per tile */
#endif
#ifndef TILE_N
#define TILE_N 1024          /* columns of C per tile */
#endif
#ifndef GEMV_TILE
#define GEMV_TILE 1024       /* outputs per tile of a matrix-vector product */
#endif
#define PARALLEL_MIN_MACS (1 << 18) /* below this (~15 µs of work) starting threads costs more than it saves */
#define MAX_POOL 4096

static int pool_threads = 1;

typedef struct {
  bool ta, tb;
  int gemv;
  int64_t m, n, k;
  float alpha, beta;
  const float *a, *b;
  float *c;
  int64_t lda, sA, ldb, sB, ldc, sC;
  int64_t tm, tn, total; /* tiles along m and n of one batch item; tiles in all */
  atomic_llong next;
} job_t;

static int64_t ceil_div(int64_t x, int64_t y) { return (x + y - 1) / y; }

/* One tile: rows [r0, r0+mm) and columns [c0, c0+nn) of C_i (row-major; a transposed operand is stored the other way). */
static void run_tile(const job_t *j, int64_t t) {
  int64_t per = j->tm * j->tn, i = t / per, r = (t % per) / j->tn, q = t % j->tn;
  const float *a = j->a + i * j->sA, *b = j->b + i * j->sB;
  float *c = j->c + i * j->sC;
  if (j->gemv && j->m == 1) {
    /* c = op(B)ᵀ·a over columns [c0, c0+nn): B stored k×n (no trans) or n×k (trans); a's elements lda apart when A is stored k×1. */
    int64_t c0 = q * GEMV_TILE, nn = j->n - c0 < GEMV_TILE ? j->n - c0 : GEMV_TILE;
    SGEMV(ROW_MAJOR, j->tb ? NO_TRANS : TRANS, j->tb ? (int)nn : (int)j->k, j->tb ? (int)j->k : (int)nn, j->alpha,
          j->tb ? b + c0 * j->ldb : b + c0, (int)j->ldb, a, j->ta ? (int)j->lda : 1, j->beta, c + c0, 1);
    return;
  }
  if (j->gemv) {
    /* c = op(A)·b over rows [r0, r0+mm), written down C's column (ldc apart); b's elements ldb apart when B is stored k×1. */
    int64_t r0 = r * GEMV_TILE, mm = j->m - r0 < GEMV_TILE ? j->m - r0 : GEMV_TILE;
    SGEMV(ROW_MAJOR, j->ta ? TRANS : NO_TRANS, j->ta ? (int)j->k : (int)mm, j->ta ? (int)mm : (int)j->k, j->alpha,
          j->ta ? a + r0 : a + r0 * j->lda, (int)j->lda, b, j->tb ? 1 : (int)j->ldb, j->beta, c + r0 * j->ldc, (int)j->ldc);
    return;
  }
  int64_t r0 = r * TILE_M, mm = j->m - r0 < TILE_M ? j->m - r0 : TILE_M;
  int64_t c0 = q * TILE_N, nn = j->n - c0 < TILE_N ? j->n - c0 : TILE_N;
  SGEMM(ROW_MAJOR, j->ta ? TRANS : NO_TRANS, j->tb ? TRANS : NO_TRANS, (int)mm, (int)nn, (int)j->k, j->alpha,
        j->ta ? a + r0 : a + r0 * j->lda, (int)j->lda, j->tb ? b + c0 * j->ldb : b + c0, (int)j->ldb, j->beta,
        c + r0 * j->ldc + c0, (int)j->ldc);
}

static void *take_tiles(void *p) {
  job_t *j = p;
  for (;;) {
    int64_t t = atomic_fetch_add(&j->next, 1);
    if (t >= j->total) return NULL;
    run_tile(j, t);
  }
}

/* Runs every tile of the `batch` products, on up to pool_threads threads (the caller's among them). */
static void run_tiles(job_t *j, int64_t batch) {
  /* A matrix-vector product has a single row (m = 1: tiles along n) or a single column (n = 1: tiles along m). */
  j->tm = j->gemv ? (j->m == 1 ? 1 : ceil_div(j->m, GEMV_TILE)) : ceil_div(j->m, TILE_M);
  j->tn = j->gemv ? (j->m == 1 ? ceil_div(j->n, GEMV_TILE) : 1) : ceil_div(j->n, TILE_N);
  j->total = j->tm * j->tn * batch;
  atomic_init(&j->next, 0);
  double macs = (double)j->m * (double)j->n * (double)(j->k > 0 ? j->k : 1) * (double)batch;
  int64_t want = macs < PARALLEL_MIN_MACS ? 1 : (j->total < pool_threads ? j->total : pool_threads);
  pthread_t extra[MAX_POOL];
  int started = 0;
  for (int64_t t = 1; t < want && started < MAX_POOL; t++)
    if (pthread_create(&extra[started], NULL, take_tiles, j) == 0) started++; /* on failure the others take its tiles */
  take_tiles(j);
  for (int t = 0; t < started; t++) pthread_join(extra[t], NULL);
}

static napi_value sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 20;
  napi_value argv[20];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 20) return throw_range(env, "sgemm: expected 20 arguments (transA, transB, m, n, k, alpha, A, aOff, lda, strideA, B, bOff, ldb, strideB, beta, C, cOff, ldc, strideC, batch)");
  bool ta, tb;
  CHECK(env, napi_get_value_bool(env, argv[0], &ta));
  CHECK(env, napi_get_value_bool(env, argv[1], &tb));
  int64_t m, n, k, aOff, lda, sA, bOff, ldb, sB, cOff, ldc, sC, batch;
  double alpha, beta;
  if (!get_i64(env, argv[2], &m) || !get_i64(env, argv[3], &n) || !get_i64(env, argv[4], &k) ||
      !get_i64(env, argv[7], &aOff) || !get_i64(env, argv[8], &lda) || !get_i64(env, argv[9], &sA) ||
      !get_i64(env, argv[11], &bOff) || !get_i64(env, argv[12], &ldb) || !get_i64(env, argv[13], &sB) ||
      !get_i64(env, argv[16], &cOff) || !get_i64(env, argv[17], &ldc) || !get_i64(env, argv[18], &sC) ||
      !get_i64(env, argv[19], &batch))
    return throw_range(env, "sgemm: sizes, offsets, leading dimensions, strides and batch must be non-negative integers");
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX)
    return throw_range(env, "sgemm: a dimension exceeds the BLAS's 32-bit integers");
  CHECK(env, napi_get_value_double(env, argv[5], &alpha));
  CHECK(env, napi_get_value_double(env, argv[14], &beta));
  uint8_t *da, *db, *dc;
  size_t na, nb, nc;
  if (!memory_of(env, argv[6], &da, &na) || !memory_of(env, argv[10], &db, &nb) || !memory_of(env, argv[15], &dc, &nc))
    return throw_range(env, "sgemm: A, B and C must be ArrayBuffers or typed arrays");
  if (batch == 0 || m == 0 || n == 0) return NULL;
  /* Stored shapes: op(A) is m×k, so A is stored k×m when transposed; likewise B. */
  float *a = matrix_at(da, na, aOff, ta ? k : m, ta ? m : k, lda, sA, batch);
  float *b = matrix_at(db, nb, bOff, tb ? n : k, tb ? k : n, ldb, sB, batch);
  float *c = matrix_at(dc, nc, cOff, m, n, ldc, sC, batch);
  if (!a || !b || !c) return throw_range(env, "sgemm: a matrix (offset, leading dimension, stride, batch) lies outside its buffer or is not 4-byte aligned");
  /* With beta 0, C's old contents (possibly NaN: the wasm heap is reused) must not leak in; sgemv scales by beta. */
  /* A single row or column of C goes to sgemv: OpenBLAS 0.3.21's sgemm packs the whole matrix for it and ran a
   * [1,1024]·[1024,4096] product 7× slower than wasm (bench/native-matmul.ts). */
  int gemv = k > 0 && (m == 1 || n == 1);
  if (gemv && beta == 0)
    for (int64_t i = 0; i < batch; i++)
      for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < n; j++) c[i * sC + r * ldc + j] = 0.0f;
  job_t job = {.ta = ta, .tb = tb, .gemv = gemv, .m = m, .n = n, .k = k, .alpha = (float)alpha, .beta = (float)beta,
               .a = a, .lda = lda, .sA = sA, .b = b, .ldb = ldb, .sB = sB, .c = c, .ldc = ldc, .sC = sC};
  run_tiles(&job, batch);
  return NULL;
}

static napi_value set_num_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t t;
  if (argc != 1 || !get_i64(env, argv[0], &t) || t < 1 || t > 4096) return throw_range(env, "setNumThreads: give a whole number of threads, 1 or more");
  pool_threads = (int)t;
  blas_single_thread();
  return NULL;
}

static napi_value get_num_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(env, napi_create_int32(env, pool_threads, &out));
  return out;
}

static napi_value str(napi_env env, const char *s) {
  napi_value v;
  if (napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v) != napi_ok) return NULL;
  return v;
}

/* { name: "OpenBLAS", version: "0.3.21", config: "OpenBLAS 0.3.21 DYNAMIC_ARCH …", core: "Haswell" } */
static napi_value blas_info(napi_env env, napi_callback_info info) {
  (void)info;
  const char *config = blas_config();
  char version[32] = "";
  /* OpenBLAS's config string starts "OpenBLAS <version> ". */
  if (config && strncmp(config, "OpenBLAS ", 9) == 0) sscanf(config + 9, "%31s", version);
  napi_value out;
  CHECK(env, napi_create_object(env, &out));
  CHECK(env, napi_set_named_property(env, out, "name", str(env, blas_name())));
  CHECK(env, napi_set_named_property(env, out, "version", str(env, version)));
  CHECK(env, napi_set_named_property(env, out, "config", str(env, config)));
  CHECK(env, napi_set_named_property(env, out, "core", str(env, blas_core())));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, sgemm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setNumThreads", NULL, set_num_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getNumThreads", NULL, get_num_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"info", NULL, blas_info, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  blas_single_thread(); /* our threads split the work (run_tiles); the BLAS's own would make results depend on them */
  return exports;
}

NAPI_MODULE(sae_blas, init)
