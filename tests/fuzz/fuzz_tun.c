/* libFuzzer target: packets read from the TUN (nt_engine_tun_packet) into the daemon's
 * engine with a live session, with timers, handshakes and link changes between them
 * (harness.h: fz_run_tun_input). What D seals must open at its peer to what went in. */
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_setup_tun();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_run_tun_input(data, size);
	return 0;
}
