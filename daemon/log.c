/* One line per event on stderr: "noisetund: wg0: peer AbCdEfGh…: message". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "noisetund.h"

enum log_level log_level = LOG_ERROR;
const char *log_ifname = "?";

void log_init(void)
{
	const char *level = getenv("LOG_LEVEL");

	if (!level || !strcmp(level, "error"))
		log_level = LOG_ERROR;
	else if (!strcmp(level, "verbose") || !strcmp(level, "debug"))
		log_level = LOG_VERBOSE;
	else if (!strcmp(level, "silent"))
		log_level = LOG_SILENT;
}

void log_msg(enum log_level level, const char *peer, const char *fmt, ...)
{
	char line[512];
	int n;
	va_list ap;

	if (level > log_level)
		return;
	n = snprintf(line, sizeof(line), "noisetund: %s: ", log_ifname);
	if (peer)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "peer %s: ", peer);
	va_start(ap, fmt);
	if (n < (int)sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}
