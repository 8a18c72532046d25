// ggml's own Q4_K, Q5_K and Q6_K bytes and values for test/kquants.test.ts (test/reference/kquants-ggml.json):
// quantize_row_*_K_ref on the test's input rows (the same recipes and xorshift as test/reference.ts' randomArray),
// and an FNV-1a hash of dequantize_row_*_K's float32 output for those blocks and for blocks of random bytes.
// Built with -ffp-contract=off, so every float operation rounds as C says (fused a·b + c, as -march=native
// allows, changes some of Q5_K's bytes):
//   G=path/to/ggml
//   gcc -O2 -DNDEBUG -ffp-contract=off -I$G/include -I$G/src scripts/kquants-reference.c $G/src/ggml-quants.c -lm -o kq
//   ./kq "$(git -C $G rev-parse HEAD)" > test/reference/kquants-ggml.json
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-quants.h"

// ggml-quants.c's row validation links against these; the reference functions never call them
void ggml_abort(const char * file, int line, const char * fmt, ...) { fprintf(stderr, "abort at %s:%d\n", file, line); abort(); }
size_t ggml_type_size(enum ggml_type type) { (void) type; abort(); }
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void) type; (void) ne; abort(); }
const char * ggml_type_name(enum ggml_type type) { (void) type; return "?"; }

#define COUNT 512

static unsigned xorshift(unsigned s) {
  s ^= s << 13;
  s ^= s >> 17;
  s ^= s << 5;
  return s;
}

// randomArray(n, seed, scale) of test/reference.ts
static void random_array(float * out, int n, unsigned seed, double scale) {
  unsigned s = seed ? seed : 1;
  for (int i = 0; i < n; i++) {
    s = xorshift(s);
    out[i] = (float) ((((double) s) / 4294967296.0 - 0.5) * 2 * scale);
  }
}

// The input rows: kquantCases in test/kquants.test.ts
static const char * const CASES[] = {"random", "wide", "zeros", "tiny", "huge", "positive", "negative", "sparse", "steps", "constant"};
#define NCASES (sizeof CASES / sizeof CASES[0])

static void case_values(int c, float * x) {
  const char * name = CASES[c];
  if (!strcmp(name, "random")) random_array(x, COUNT, 1, 1);
  else if (!strcmp(name, "wide")) random_array(x, COUNT, 2, 1000);
  else if (!strcmp(name, "zeros")) memset(x, 0, COUNT * sizeof(float));
  else if (!strcmp(name, "tiny")) random_array(x, COUNT, 3, 1e-6);
  else if (!strcmp(name, "huge")) random_array(x, COUNT, 4, 1e9);
  else if (!strcmp(name, "positive")) { random_array(x, COUNT, 5, 1); for (int i = 0; i < COUNT; i++) x[i] = fabsf(x[i]); }
  else if (!strcmp(name, "negative")) { random_array(x, COUNT, 6, 1); for (int i = 0; i < COUNT; i++) x[i] = -fabsf(x[i]); }
  else if (!strcmp(name, "sparse")) {
    random_array(x, COUNT, 7, 1);
    for (int i = 0; i < COUNT; i++) if ((i >> 4) % 3 == 0) x[i] = 0;
    x[100] = 50;
  }
  else if (!strcmp(name, "steps")) for (int i = 0; i < COUNT; i++) x[i] = (float) ((i % 17) - 8) * 0.25f;
  else if (!strcmp(name, "constant")) for (int i = 0; i < COUNT; i++) x[i] = 0.5f;
}

// blocks of random bytes whose f16 scales (bytes at `halves`) are finite: bit 14 of each cleared
static void random_blocks(unsigned char * out, int blocks, int block_bytes, const int * halves, int nhalves, unsigned seed) {
  unsigned s = seed;
  for (int i = 0; i < blocks * block_bytes; i++) {
    s = xorshift(s);
    out[i] = s >> 24;
  }
  for (int b = 0; b < blocks; b++)
    for (int h = 0; h < nhalves; h++) out[b * block_bytes + halves[h] + 1] &= 0xbf;
}

static unsigned fnv1a(const void * data, size_t n) {
  const unsigned char * p = data;
  unsigned h = 0x811c9dc5u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x01000193u;
  return h;
}

typedef void (*quantize_fn)(const float *, void *, int64_t);
typedef void (*dequantize_fn)(const void *, float *, int64_t);

static void print_format(const char * name, int block_bytes, quantize_fn quantize, dequantize_fn dequantize, const int * halves, int nhalves, unsigned seed, int last) {
  float x[COUNT], y[COUNT];
  unsigned char q[COUNT]; // a super-block of 256 takes at most 256 bytes
  printf("  \"%s\": {\n    \"encode\": {\n", name);
  for (size_t c = 0; c < NCASES; c++) {
    case_values(c, x);
    quantize(x, q, COUNT);
    printf("      \"%s\": \"", CASES[c]);
    for (int i = 0; i < COUNT / 256 * block_bytes; i++) printf("%02x", q[i]);
    printf("\"%s\n", c + 1 < NCASES ? "," : "");
  }
  printf("    },\n    \"dequantize\": {\n");
  for (size_t c = 0; c < NCASES; c++) {
    case_values(c, x);
    quantize(x, q, COUNT);
    dequantize(q, y, COUNT);
    printf("      \"%s\": \"%08x\",\n", CASES[c], fnv1a(y, sizeof y));
  }
  random_blocks(q, COUNT / 256, block_bytes, halves, nhalves, seed);
  dequantize(q, y, COUNT);
  printf("      \"random-bytes\": \"%08x\"\n    }\n  }%s\n", fnv1a(y, sizeof y), last ? "" : ",");
}

int main(int argc, char ** argv) {
  static const int q4_halves[] = {0, 2}, q6_halves[] = {208};
  printf("{\n  \"ggml\": \"%s\",\n  \"compiler\": \"gcc %s\",\n", argc > 1 ? argv[1] : "unknown", __VERSION__);
  print_format("q4_k", sizeof(block_q4_K), (quantize_fn) quantize_row_q4_K_ref, (dequantize_fn) dequantize_row_q4_K, q4_halves, 2, 11, 0);
  print_format("q5_k", sizeof(block_q5_K), (quantize_fn) quantize_row_q5_K_ref, (dequantize_fn) dequantize_row_q5_K, q4_halves, 2, 12, 0);
  print_format("q6_k", sizeof(block_q6_K), (quantize_fn) quantize_row_q6_K_ref, (dequantize_fn) dequantize_row_q6_K, q6_halves, 1, 13, 1);
  printf("}\n");
  return 0;
}
