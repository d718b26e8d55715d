/* libFuzzer target: every datagram type against the daemon's engine with a live peer
 * and keypair (harness.h describes the scenario and the input format). */
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_run_input(data, size, NULL);
	return 0;
}
