/* Unit tests for controller/buf.c: the capped buffer. */
#include "test.h"

#include "buf.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(buf_append_keeps_nul_terminated)
{
	struct ctl_buf b = CTL_BUF_INIT;
	CHECK_STR(ctl_buf_str(&b), "");
	CHECK_INT(ctl_buf_puts(&b, "hello "), 0);
	CHECK_INT(ctl_buf_printf(&b, "%s %d", "world", 42), 0);
	CHECK_STR(ctl_buf_str(&b), "hello world 42");
	CHECK_INT(b.len, 14);
	ctl_buf_dispose(&b);
}

TEST(buf_refuses_growth_past_cap)
{
	struct ctl_buf b;
	ctl_buf_init(&b, 8);
	CHECK_INT(ctl_buf_puts(&b, "12345678"), 0);
	CHECK_INT(ctl_buf_puts(&b, "9"), CTL_ETOOBIG);
	CHECK_STR(ctl_buf_str(&b), "12345678");
	ctl_buf_dispose(&b);
}

/* Formatted in place: across a growth, exactly at the capacity, and
 * refused past the cap without a trace of what did not fit. */
TEST(buf_printf_grows_in_place_and_respects_cap)
{
	struct ctl_buf b = CTL_BUF_INIT;
	char want[1200] = "";
	for (int i = 0; i < 100; i++) {
		CHECK_INT(ctl_buf_printf(&b, "%s%d", i ? "," : "", i * 1001), 0);
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%d", i ? "," : "", i * 1001);
	}
	CHECK_STR(ctl_buf_str(&b), want);
	CHECK_INT(b.len, strlen(want));
	ctl_buf_dispose(&b);

	ctl_buf_init(&b, 300);
	CHECK_INT(ctl_buf_printf(&b, "%0254d", 7), 0); /* 254 and the NUL: the first 256 bytes, full */
	CHECK_INT(ctl_buf_printf(&b, "%s", "ab"), 0);  /* grows */
	CHECK_INT(b.len, 256);
	CHECK_INT(ctl_buf_printf(&b, "%050d", 1), CTL_ETOOBIG);
	CHECK_INT(b.len, 256);
	CHECK_INT(strlen(ctl_buf_str(&b)), 256);
	CHECK_INT(ctl_buf_printf(&b, "%044d", 2), 0); /* exactly the cap */
	CHECK_INT(b.len, 300);
	CHECK_INT(ctl_buf_printf(&b, "%s", "x"), CTL_ETOOBIG);
	CHECK_INT(strlen(ctl_buf_str(&b)), 300);
	ctl_buf_dispose(&b);
}

TEST(buf_consume_moves_rest_to_front)
{
	struct ctl_buf b = CTL_BUF_INIT;
	ctl_buf_puts(&b, "line1\nline2");
	ctl_buf_consume(&b, 6);
	CHECK_STR(ctl_buf_str(&b), "line2");
	ctl_buf_consume(&b, 100);
	CHECK_INT(b.len, 0);
	char *s = ctl_buf_detach(&b);
	CHECK_STR(s, "");
	free(s);
}

TEST_MAIN(T(buf_append_keeps_nul_terminated), T(buf_refuses_growth_past_cap),
	  T(buf_printf_grows_in_place_and_respects_cap), T(buf_consume_moves_rest_to_front))
