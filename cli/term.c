/* Colour on a terminal, as wg: the format strings carry the escape sequences, which are
 * dropped from the output when colour is off. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static bool color_on(void)
{
	static int mode = -1;
	const char *env;

	if (mode < 0) {
		env = getenv("WG_COLOR_MODE");
		if (env && !strcmp(env, "always"))
			mode = 1;
		else if (env && !strcmp(env, "never"))
			mode = 0;
		else
			mode = isatty(STDOUT_FILENO);
	}
	return mode;
}

void term_printf(const char *fmt, ...)
{
	char stack[512], *buf = stack;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(stack, sizeof(stack), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(stack)) {
		buf = malloc((size_t)n + 1);
		if (!buf)
			return;
		va_start(ap, fmt);
		vsnprintf(buf, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	if (!color_on()) {
		/* Drop every ESC '[' ... 'm'; nothing we print otherwise contains ESC. */
		size_t w = 0;

		for (size_t r = 0; r < (size_t)n; r++) {
			if (buf[r] == '\x1b' && r + 1 < (size_t)n && buf[r + 1] == '[') {
				while (r < (size_t)n && buf[r] != 'm')
					r++;
				continue;
			}
			buf[w++] = buf[r];
		}
		n = (int)w;
	}
	fwrite(buf, 1, (size_t)n, stdout);
	if (buf != stack)
		free(buf);
}
