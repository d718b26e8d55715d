/* lib/text.c: the growable text buffer that the control socket's replies and the CLI's
 * client configs are written into. */
#include <check.h>
#include <string.h>

#include "noisetun/text.h"

#include "util.h"

START_TEST(test_text_grows_and_terminates)
{
	struct nt_text t = { 0 };

	for (int i = 0; i < 1000; i++)
		nt_text_printf(&t, "%04d,", i % 10000);
	ck_assert(!t.failed);
	ck_assert_uint_eq(t.len, 5000);
	ck_assert_uint_gt(t.cap, t.len); /* room for the NUL */
	ck_assert_int_eq(t.buf[t.len], '\0');
	ck_assert_mem_eq(t.buf, "0000,0001,0002,", 15);
	ck_assert_mem_eq(t.buf + 4995, "0999,", 5);
	nt_text_add(&t, "xyz", 3);
	ck_assert_str_eq(t.buf + 5000, "xyz");
	nt_text_free(&t);
	ck_assert_ptr_null(t.buf);
	ck_assert_uint_eq(t.cap, 0);
	ck_assert_uint_eq(t.len, 0);
}
END_TEST

/* Past max the buffer fails, and stays failed: nothing after it is added, so a reply is
 * never sent with a piece missing from its middle. */
START_TEST(test_text_bound_sticks)
{
	struct nt_text t = { .max = 10 };

	nt_text_add(&t, "12345", 5);
	nt_text_add(&t, "67890", 5);
	ck_assert(!t.failed);
	ck_assert_str_eq(t.buf, "1234567890");
	nt_text_add(&t, "x", 1);
	ck_assert(t.failed);
	ck_assert_uint_eq(t.len, 10);
	t.max = 0;
	nt_text_printf(&t, "%s", "more");
	ck_assert_uint_eq(t.len, 10); /* failed sticks, bound or not */
	ck_assert(!nt_text_reserve(&t, 1));
	nt_text_clear(&t, 1 << 20);
	ck_assert(!t.failed);
	ck_assert_uint_eq(t.len, 0);
	ck_assert_ptr_nonnull(t.buf); /* kept: small */
	ck_assert_int_eq(t.buf[0], '\0');
	nt_text_add(&t, "ab", 2);
	ck_assert_str_eq(t.buf, "ab");
	nt_text_clear(&t, 0); /* given back */
	ck_assert_ptr_null(t.buf);
	nt_text_free(&t);
}
END_TEST

START_TEST(test_text_huge_request_fails_cleanly)
{
	struct nt_text t = { 0 };

	nt_text_add(&t, "a", 1);
	ck_assert(!nt_text_reserve(&t, SIZE_MAX - 1));
	ck_assert(t.failed);
	ck_assert_str_eq(t.buf, "a");
	nt_text_free(&t);
}
END_TEST

static Suite *text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("text");

	tcase_add_test(tc, test_text_grows_and_terminates);
	tcase_add_test(tc, test_text_bound_sticks);
	tcase_add_test(tc, test_text_huge_request_fails_cleanly);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(text_suite());
}
