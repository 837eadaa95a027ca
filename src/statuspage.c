#include "autoconf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "clock.h"
#include "commands.h"
#include "health.h"
#include "history.h"
#include "json.h"
#include "log.h"
#include "series.h"
#include "statuspage.h"

struct statuspage {
	const struct commands *cmds;
	statuspage_sample_cb sample;
	void *arg;
	struct event *timer;
	struct series series;
	/* The history part of the answer, kept while the file is unchanged. */
	struct jbuf history;
	bool history_valid;
	struct stat history_sb;
};

static void on_sample(evutil_socket_t fd, short what, void *arg);
static void history_refresh(struct statuspage *sp);
static bool same_file(const struct stat *a, const struct stat *b);
static int element_hash(const char *tag, char *out, size_t outlen);

struct statuspage *
statuspage_new(struct event_base *base, const struct commands *cmds, statuspage_sample_cb sample,
    void *arg)
{
	struct statuspage *sp;
	struct timeval second = {1, 0};

	if ((sp = calloc(1, sizeof(*sp))) == NULL) {
		log_err("%s: out of memory", __func__);
		return NULL;
	}
	sp->cmds = cmds;
	sp->sample = sample;
	sp->arg = arg;
	series_init(&sp->series);
	jbuf_init(&sp->history);
	if ((sp->timer = event_new(base, -1, EV_PERSIST, on_sample, sp)) == NULL ||
	    event_add(sp->timer, &second) < 0) {
		log_err("%s: out of memory", __func__);
		statuspage_free(sp);
		return NULL;
	}
	/* The first reading, so that the first tick already gives a sample. */
	statuspage_sample(sp, clock_wall_ms());
	return sp;
}

void
statuspage_free(struct statuspage *sp)
{
	if (sp == NULL)
		return;
	if (sp->timer != NULL)
		event_free(sp->timer);
	jbuf_free(&sp->history);
	free(sp);
}

void
statuspage_sample(struct statuspage *sp, int64_t wall_ms)
{
	struct guard_sample now[COLOR_COUNT];
	unsigned c;

	for (c = 0; c < COLOR_COUNT; c++)
		sp->sample(sp->arg, (enum color)c, &now[c]);
	series_add(&sp->series, wall_ms, now);
}

static void
on_sample(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	statuspage_sample(arg, clock_wall_ms());
}

void
statuspage_json(struct statuspage *sp, struct jbuf *b)
{
	commands_status_json(sp->cmds, b);
	/* Reopen the object to add members. */
	if (b->oom || b->len == 0 || b->s[b->len - 1] != '}')
		return;
	b->s[--b->len] = '\0';
	jbuf_raw(b, ",\"servers\":");
	health_report(*sp->cmds->health, -1, b);
	history_refresh(sp);
	jbuf_raw(b, ",");
	jbuf_raw(b, sp->history.s != NULL ? sp->history.s : "\"history\":[]");
	jbuf_raw(b, ",\"series\":");
	series_json(&sp->series, b);
	jbuf_raw(b, "}");
}

/*
 * Re-reads the last entries only when the history file changed (another
 * inode, size or modification time): history_read reads and parses up to
 * megabytes, and every open page asks once a second.
 */
static void
history_refresh(struct statuspage *sp)
{
	struct stat sb;
	char **lines = NULL, err[512];
	size_t n = 0, skipped = 0, i;
	struct jbuf *h = &sp->history;

	memset(&sb, 0, sizeof(sb));
	if (stat(sp->cmds->history, &sb) == -1)
		memset(&sb, 0, sizeof(sb)); /* absent: history_read says what it is */
	if (sp->history_valid && same_file(&sb, &sp->history_sb))
		return;
	jbuf_free(h);
	jbuf_init(h);
	if (history_read(sp->cmds->history, STATUSPAGE_HISTORY, &lines, &n, &skipped, err, sizeof(err)) < 0) {
		jbuf_raw(h, "\"history\":[],\"history_error\":");
		jbuf_str(h, err);
	} else {
		jbuf_raw(h, "\"history\":[");
		for (i = 0; i < n; i++) {
			if (i > 0)
				jbuf_raw(h, ",");
			jbuf_raw(h, lines[i]);
		}
		jbuf_raw(h, "]");
		history_lines_free(lines, n);
	}
	if (h->oom) {
		jbuf_free(h);
		jbuf_init(h);
		sp->history_valid = false;
		return;
	}
	sp->history_sb = sb;
	sp->history_valid = true;
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

const char *
statuspage_csp(void)
{
	static char csp[512];
	static bool done;
	char script[64], style[64];

	if (done)
		return csp;
	if (element_hash("script", script, sizeof(script)) < 0 || element_hash("style", style, sizeof(style)) < 0)
		return NULL;
	snprintf(csp, sizeof(csp),
	    "default-src 'none'; script-src '%s'; style-src '%s'; connect-src 'self'; img-src data:; "
	    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	    script, style);
	done = true;
	return csp;
}

/*
 * "sha256-BASE64" of the text of the page's first <tag> element, as a
 * browser hashes an inline script or style for CSP. Returns 0, -1 if the
 * element is missing or on failure.
 */
static int
element_hash(const char *tag, char *out, size_t outlen)
{
	char open[16], close[16];
	const char *a, *z;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if ((a = strstr(statuspage_html, open)) == NULL)
		return -1;
	a += strlen(open);
	if ((z = strstr(a, close)) == NULL)
		return -1;
	if (EVP_Digest(a, (size_t)(z - a), md, &mdlen, EVP_sha256(), NULL) != 1)
		return -1;
	EVP_EncodeBlock(b64, md, (int)mdlen);
	if ((size_t)snprintf(out, outlen, "sha256-%s", (const char *)b64) >= outlen)
		return -1;
	return 0;
}
