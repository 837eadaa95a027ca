#ifndef CUTOVER_TESTS_FUZZ_FUZZ_H
#define CUTOVER_TESTS_FUZZ_FUZZ_H

/*
 * Shared by the libFuzzer targets in tests/fuzz/fuzz_*.c. Each target
 * defines LLVMFuzzerTestOneInput and, where it needs set-up,
 * LLVMFuzzerInitialize. A broken property is a crash: FUZZ_CHECK prints the
 * condition and aborts, so libFuzzer saves the input like any ASan report.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, \
			    __LINE__, #cond);                                  \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

#endif
