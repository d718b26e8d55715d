/* genkey, genpsk, pubkey: keys on stdin and stdout only, never in argv. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"

int cmd_genkey(int argc, char *argv[])
{
	uint8_t key[NT_KEY_LEN];
	char b64[NT_KEY_B64_LEN + 1];
	struct stat st;

	if (argc != 1) {
		fprintf(stderr, "Usage: %s %s\n", prog_name, argv[0]);
		return 1;
	}
	/* The shell created the file: all we can do is say so, as wg does. */
	if (!fstat(STDOUT_FILENO, &st) && S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO))
		fputs("Warning: writing to world accessible file.\nConsider setting the umask to 077 and trying again.\n",
		      stderr);
	randombytes_buf(key, sizeof(key));
	if (!strcmp(argv[0], "genkey"))
		nt_key_clamp(key);
	nt_key_to_base64(b64, key);
	puts(b64);
	nt_wipe(key, sizeof(key));
	nt_wipe(b64, sizeof(b64));
	return 0;
}

int cmd_pubkey(int argc, char *argv[])
{
	uint8_t private_key[NT_KEY_LEN], public_key[NT_KEY_LEN];
	char b64[NT_KEY_B64_LEN + 1];
	int c, ret = 1;

	if (argc != 1) {
		fprintf(stderr, "Usage: %s %s\n", prog_name, argv[0]);
		return 1;
	}
	if (fread(b64, 1, NT_KEY_B64_LEN, stdin) != NT_KEY_B64_LEN) {
		fprintf(stderr, "%s: Key is not the correct length or format\n", prog_name);
		goto out;
	}
	b64[NT_KEY_B64_LEN] = '\0';
	/* Whitespace and NUL bytes may follow the key; nothing else. */
	while ((c = getchar()) != EOF) {
		if (c && c != ' ' && c != '\t' && c != '\n' && c != '\v' && c != '\f' && c != '\r') {
			fprintf(stderr, "%s: Trailing characters found after key\n", prog_name);
			goto out;
		}
	}
	if (nt_key_from_base64(private_key, b64)) {
		fprintf(stderr, "%s: Key is not the correct length or format\n", prog_name);
		goto out;
	}
	if (nt_dh_public(public_key, private_key)) {
		fprintf(stderr, "%s: Key is not the correct length or format\n", prog_name);
		goto out;
	}
	nt_key_to_base64(b64, public_key);
	puts(b64);
	ret = 0;
out:
	nt_wipe(private_key, sizeof(private_key));
	nt_wipe(b64, sizeof(b64));
	return ret;
}
