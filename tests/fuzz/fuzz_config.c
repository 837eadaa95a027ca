/*
 * The configuration loader (config_load, then config_reload_check against
 * the loaded file itself and against a minimal configuration). The input is
 * the text of cutover.conf, written to a file in a private temporary
 * directory that also holds the files a configuration may name (a.pem,
 * a.key, ca.pem, an executable hook), as in tests/unit/check_config.c.
 * Inputs with "@include" are skipped: an include may name any file on the
 * machine (/dev/zero, a FIFO), which tests the fuzzing host, not the loader.
 * Properties: a load succeeds exactly when it reports no error; every error
 * starts with "FILE:" of the file loaded; a configuration may always be
 * reloaded onto itself.
 */

#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "log.h"

static char dir[] = "/tmp/cutover-fuzz-config.XXXXXX";
static char conf_path[PATH_MAX];
static struct config *minimal;

static const char *const files[][3] = {
    {"a.pem", "cert\n", "0644"},
    {"a.key", "key\n", "0600"},
    {"ca.pem", "ca\n", "0644"},
    {"hook", "#!/bin/sh\nexit 0\n", "0755"},
    {"noexec", "#!/bin/sh\nexit 0\n", "0644"},
};

static void
write_file(const char *path, const void *text, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	FUZZ_CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	FUZZ_CHECK(len == 0 || write(fd, text, len) == (ssize_t)len, "write %s", path);
	FUZZ_CHECK(close(fd) == 0, "close %s", path);
}

static void
cleanup(void)
{
	char path[PATH_MAX];
	size_t i;

	config_free(minimal);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
		unlink(path);
	}
	unlink(conf_path);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char min_conf[] =
	    "listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( \"127.0.0.1:9001\" ); };"
	    " green = { servers = ( ); }; };\n";
	struct config_errors errs = {0};
	char path[PATH_MAX];
	size_t i;

	(void)argc;
	(void)argv;
	log_set_level(LOG_LVL_ERR);
	FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
		write_file(path, files[i][1], strlen(files[i][1]),
		    (mode_t)strtoul(files[i][2], NULL, 8));
		FUZZ_CHECK(chmod(path, (mode_t)strtoul(files[i][2], NULL, 8)) == 0, "chmod");
	}
	snprintf(conf_path, sizeof(conf_path), "%s/cutover.conf", dir);
	write_file(conf_path, min_conf, sizeof(min_conf) - 1, 0644);
	FUZZ_CHECK(config_load(conf_path, &minimal, &errs) == 0, "minimal configuration: %s",
	    errs.n > 0 ? errs.msgs[0] : "?");
	config_errors_free(&errs);
	atexit(cleanup);
	return 0;
}

static void
check_errors(const struct config_errors *errs, size_t from)
{
	size_t i, plen = strlen(conf_path);

	for (i = from; i < errs->n; i++)
		FUZZ_CHECK(strncmp(errs->msgs[i], conf_path, plen) == 0 &&
		    errs->msgs[i][plen] == ':', "error without FILE: prefix: %s", errs->msgs[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	int rc;

	if (memmem(data, size, "@include", 8) != NULL)
		return 0;
	write_file(conf_path, data, size, 0644);
	rc = config_load(conf_path, &cfg, &errs);
	FUZZ_CHECK((rc == 0) == (errs.n == 0), "config_load %d with %zu errors", rc, errs.n);
	FUZZ_CHECK((rc == 0) == (cfg != NULL), "config_load %d, cfg %p", rc, (void *)cfg);
	check_errors(&errs, 0);
	if (rc == 0) {
		FUZZ_CHECK(config_reload_check(cfg, cfg, &errs) == 0, "reload onto itself: %s",
		    errs.n > 0 ? errs.msgs[0] : "?");
		/* Either way, errors name the file. */
		(void)config_reload_check(minimal, cfg, &errs);
		check_errors(&errs, 0);
		FUZZ_CHECK(config_workers(cfg) >= 1, "workers");
	}
	config_errors_free(&errs);
	config_free(cfg);
	return 0;
}
