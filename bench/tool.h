/* What the bench's load tools (hsgen, sealblast) share: dying on errors with the tool's
 * name, the clocks, the CPU time used, randomness for the core, a thread count for the
 * work done off the clock, and number arguments. Header-only: bench/run compiles each tool
 * from its one .c file. Define TOOL_NAME (a string literal) before including, as
 * tests/net/tools/toolkit.h wants for the adversarial tools. */
#ifndef NT_BENCH_TOOL_H
#define NT_BENCH_TOOL_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "noisetun/crypto.h"
#include "noisetun/messages.h"

#ifndef TOOL_NAME
#error "define TOOL_NAME before including tool.h"
#endif

#define MAX_THREADS 16 /* the most threads nthreads() gives: sized arrays of jobs */

static inline void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs(TOOL_NAME ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static inline uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) < 0)
		die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * NT_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* Nanoseconds since the UNIX epoch: what an initiation's TAI64N timestamp is made of. */
static inline uint64_t wall_now_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

/* User plus system CPU time of the whole process (every thread), in seconds. */
static inline double cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		die("getrusage: %s", strerror(errno));
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static inline void rng_fill(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	randombytes_buf(buf, len);
}

static const struct nt_rng rng = { .fill = rng_fill, .ctx = NULL };

/* One thread per online CPU, 1 to MAX_THREADS. */
static inline unsigned nthreads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

/* s as a whole number (decimal, 0x hex or 0 octal, as strtoull), or die naming what. */
static inline uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || end == s)
		die("bad %s: %s", what, s);
	return v;
}

/* s as a number >= 0, or die naming what. */
static inline double parse_double(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (*end || end == s || v < 0)
		die("bad %s: %s", what, s);
	return v;
}

#endif
