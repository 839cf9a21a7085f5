/* Unit tests for controller/buf.c: the capped buffer. */
#include "test.h"

#include "buf.h"
#include "error.h"

#include <stdlib.h>

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
	  T(buf_consume_moves_rest_to_front))
