#pragma once
// Shared by the libFuzzer targets: a failed check aborts (libFuzzer then saves the input), and
// UndefinedBehaviorSanitizer reports stop the run instead of scrolling by.
#include <cstddef>
#include <cstdint>
#include <cstdio>

#define FUZZ_CHECK(cond)                                                           \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                            \
    }                                                                              \
  } while (0)

// Read by the UBSan runtime at start-up; UBSAN_OPTIONS in the environment still overrides it. Not
// inline, so that it is emitted: include this header from the one source file of each target.
extern "C" __attribute__((used)) const char* __ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1";
}
