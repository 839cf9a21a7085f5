/* Unit tests for reconcilers/options.c: flags, environment, defaults. */
#include "test.h"

#include "error.h"
#include "options.h"

static const char *env_table[][2] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}, {NULL, NULL}};

static const char *fake_env(const char *name)
{
	for (size_t i = 0; i < sizeof(env_table) / sizeof(env_table[0]); i++)
		if (env_table[i][0] && !strcmp(env_table[i][0], name))
			return env_table[i][1];
	return NULL;
}

static void env_set(int i, const char *k, const char *v)
{
	env_table[i][0] = k;
	env_table[i][1] = v;
}

static void env_clear(void)
{
	for (int i = 0; i < 4; i++)
		env_set(i, NULL, NULL);
}

TEST(options_defaults)
{
	env_clear();
	struct options o;
	char *argv[] = {"acrpool-controller", NULL};
	CHECK_INT(options_parse(&o, 1, argv, fake_env), 0);
	CHECK(o.kubeconfig == NULL);
	CHECK_INT(o.workers, 4);
	CHECK_INT(o.resync_ms, 600000);
	CHECK_INT(o.max_retry_delay_ms, 60000);
	CHECK(!o.leader_elect);
	CHECK_INT(o.lease_duration_ms, 15000);
	CHECK_INT(o.renew_deadline_ms, 10000);
	CHECK_INT(o.retry_period_ms, 2000);
	CHECK_STR(o.metrics_bind_address, ":8443");
	CHECK(o.metrics_secure);
	CHECK(o.metrics_cert_dir == NULL);
	CHECK_STR(o.health_bind_address, ":8081");
	CHECK_STR(o.leader_election_id, "acrpool-controller");
	options_dispose(&o);
}

TEST(options_flag_beats_env_beats_default)
{
	env_clear();
	env_set(0, "ACRPOOL_WORKERS", "8");
	env_set(1, "KUBECONFIG", "/env/kubeconfig");
	env_set(2, "ACRPOOL_ARM_ENDPOINT", "http://127.0.0.1:9999");
	struct options o;
	char *argv[] = {"x", "--workers=2", "--leader-elect", "--resync-period", "30s", NULL};
	CHECK_INT(options_parse(&o, 5, argv, fake_env), 0);
	CHECK_INT(o.workers, 2);
	CHECK(o.leader_elect);
	CHECK_INT(o.resync_ms, 30000);
	CHECK_STR(o.kubeconfig, "/env/kubeconfig");
	CHECK_STR(o.arm_endpoint, "http://127.0.0.1:9999");
	options_dispose(&o);
}

TEST(options_devops_endpoint)
{
	env_clear();
	struct options o;
	char *argv0[] = {"x", NULL};
	CHECK_INT(options_parse(&o, 1, argv0, fake_env), 0);
	CHECK(o.devops_endpoint == NULL); /* https://dev.azure.com */
	options_dispose(&o);
	env_set(0, "ACRPOOL_DEVOPS_ENDPOINT", "http://127.0.0.1:1/devops");
	CHECK_INT(options_parse(&o, 1, argv0, fake_env), 0);
	CHECK_STR(o.devops_endpoint, "http://127.0.0.1:1/devops");
	options_dispose(&o);
	char *argv[] = {"x", "--devops-endpoint", "http://127.0.0.1:2/devops", NULL};
	CHECK_INT(options_parse(&o, 3, argv, fake_env), 0);
	CHECK_STR(o.devops_endpoint, "http://127.0.0.1:2/devops");
	options_dispose(&o);
}

TEST(options_acrpool_env_beats_well_known_env)
{
	env_clear();
	env_set(0, "KUBECONFIG", "/a");
	env_set(1, "ACRPOOL_KUBECONFIG", "/b");
	struct options o;
	char *argv[] = {"x", NULL};
	CHECK_INT(options_parse(&o, 1, argv, fake_env), 0);
	CHECK_STR(o.kubeconfig, "/b");
	options_dispose(&o);
}

TEST(options_bad_values_name_the_flag)
{
	env_clear();
	struct options o;
	char *a1[] = {"x", "--workers=zero", NULL};
	CHECK_INT(options_parse(&o, 2, a1, fake_env), CTL_EINVALID);
	CHECK(strstr(ctl_error_last()->message, "--workers") != NULL);
	options_dispose(&o);
	char *a2[] = {"x", "--no-such-flag", NULL};
	CHECK_INT(options_parse(&o, 2, a2, fake_env), CTL_EINVALID);
	CHECK(strstr(ctl_error_last()->message, "no-such-flag") != NULL);
	options_dispose(&o);
	env_set(0, "ACRPOOL_RESYNC_PERIOD", "soon");
	char *a3[] = {"x", NULL};
	CHECK_INT(options_parse(&o, 1, a3, fake_env), CTL_EINVALID);
	CHECK(strstr(ctl_error_last()->message, "ACRPOOL_RESYNC_PERIOD") != NULL);
	options_dispose(&o);
	env_clear();
	char *a4[] = {"x", "--renew-deadline=20s", NULL};
	CHECK_INT(options_parse(&o, 2, a4, fake_env), CTL_EINVALID);
	options_dispose(&o);
	char *a5[] = {"x", "--workers", NULL};
	CHECK_INT(options_parse(&o, 2, a5, fake_env), CTL_EINVALID);
	options_dispose(&o);
}

TEST(options_insecure_metrics_only_on_loopback)
{
	env_clear();
	struct options o;
	char *a1[] = {"x", "--metrics-secure=false", "--metrics-bind-address", "127.0.0.1:0", NULL};
	CHECK_INT(options_parse(&o, 4, a1, fake_env), 0);
	CHECK(!o.metrics_secure);
	options_dispose(&o);
	char *a2[] = {"x", "--metrics-secure=false", "--metrics-bind-address", "[::1]:8080", NULL};
	CHECK_INT(options_parse(&o, 4, a2, fake_env), 0);
	options_dispose(&o);
	char *a3[] = {"x", "--metrics-secure=false", "--metrics-bind-address", "localhost:8080", NULL};
	CHECK_INT(options_parse(&o, 4, a3, fake_env), 0);
	options_dispose(&o);
	/* Every interface, the default ":8443", or another address: refused. */
	char *a4[] = {"x", "--metrics-secure=false", "--metrics-bind-address", "0.0.0.0:8080", NULL};
	CHECK_INT(options_parse(&o, 4, a4, fake_env), CTL_EINVALID);
	CHECK(strstr(ctl_error_last()->message, "loopback") != NULL);
	options_dispose(&o);
	char *a5[] = {"x", "--metrics-secure=false", NULL};
	CHECK_INT(options_parse(&o, 2, a5, fake_env), CTL_EINVALID);
	options_dispose(&o);
	env_set(0, "ACRPOOL_METRICS_SECURE", "false");
	env_set(1, "ACRPOOL_METRICS_BIND_ADDRESS", "10.0.0.5:8080");
	char *a6[] = {"x", NULL};
	CHECK_INT(options_parse(&o, 1, a6, fake_env), CTL_EINVALID);
	options_dispose(&o);
	/* "0" turns metrics off, secure or not. */
	env_set(1, "ACRPOOL_METRICS_BIND_ADDRESS", "0");
	CHECK_INT(options_parse(&o, 1, a6, fake_env), 0);
	options_dispose(&o);
	env_clear();
	/* Secure metrics and plain probes cannot share a port. */
	char *a7[] = {"x", "--metrics-bind-address=:9000", "--health-probe-bind-address=:9000", NULL};
	CHECK_INT(options_parse(&o, 3, a7, fake_env), CTL_EINVALID);
	options_dispose(&o);
	/* Port 0 twice is two ephemeral ports. */
	char *a9[] = {"x", "--metrics-bind-address=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0", NULL};
	CHECK_INT(options_parse(&o, 3, a9, fake_env), 0);
	options_dispose(&o);
	char *a8[] = {"x", "--metrics-cert-dir=/certs", NULL};
	CHECK_INT(options_parse(&o, 2, a8, fake_env), 0);
	CHECK_STR(o.metrics_cert_dir, "/certs");
	CHECK(o.metrics_secure);
	options_dispose(&o);
}

TEST(options_loopback)
{
	CHECK(options_is_loopback("127.0.0.1"));
	CHECK(options_is_loopback("127.1.2.3"));
	CHECK(options_is_loopback("::1"));
	CHECK(options_is_loopback("localhost"));
	CHECK(!options_is_loopback(NULL));
	CHECK(!options_is_loopback(""));
	CHECK(!options_is_loopback("0.0.0.0"));
	CHECK(!options_is_loopback("::"));
	CHECK(!options_is_loopback("10.1.2.3"));
	CHECK(!options_is_loopback("localhost.example.com"));
}

TEST(options_durations)
{
	long ms = 0;
	CHECK_INT(options_parse_duration("250ms", &ms), 0);
	CHECK_INT(ms, 250);
	CHECK_INT(options_parse_duration("1h30m", &ms), 0);
	CHECK_INT(ms, 5400000);
	CHECK_INT(options_parse_duration("45", &ms), 0);
	CHECK_INT(ms, 45000);
	CHECK_INT(options_parse_duration("10x", &ms), CTL_EINVALID);
	CHECK_INT(options_parse_duration("-5s", &ms), CTL_EINVALID);
	CHECK_INT(options_parse_duration("", &ms), CTL_EINVALID);
	CHECK_INT(options_parse_duration("5s3", &ms), CTL_EINVALID);
	CHECK_INT(options_parse_duration("99999999999999999999s", &ms), CTL_EINVALID);
}

TEST(options_usage_lists_every_flag)
{
	const char *u = options_usage();
	CHECK(strstr(u, "--kubeconfig") && strstr(u, "--namespaces") && strstr(u, "--workers"));
	CHECK(strstr(u, "--leader-elect") && strstr(u, "--arm-endpoint") && strstr(u, "--authority-host") &&
	      strstr(u, "--devops-endpoint"));
	CHECK(strstr(u, "--metrics-bind-address") && strstr(u, "--log-level"));
	CHECK(strstr(u, "--metrics-secure") && strstr(u, "--metrics-cert-dir"));
	CHECK(strstr(u, "--max-retry-delay") != NULL); /* the last one: nothing cut off */
}

TEST_MAIN(T(options_defaults), T(options_flag_beats_env_beats_default),
	  T(options_devops_endpoint), T(options_acrpool_env_beats_well_known_env), T(options_bad_values_name_the_flag),
	  T(options_insecure_metrics_only_on_loopback), T(options_loopback),
	  T(options_durations), T(options_usage_lists_every_flag))
