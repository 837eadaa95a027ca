#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "hooks.h"
#include "json.h"
#include "log.h"

#define HOOK_MAX_OUTPUT (64 * 1024)
#define HOOK_KILL_AFTER_MS 2000  /* SIGTERM -> SIGKILL */
#define HOOK_PIPE_GRACE_MS 1000  /* wait for EOF after exit (grandchildren may hold the pipe) */
#define HOOK_READ_PER_EVENT (64 * 1024)

/* What the timer means right now. */
enum hook_phase {
	HP_RUNNING,  /* timer: the hook's timeout (unset when there is none) */
	HP_TERM,     /* SIGTERM sent; timer: when to send SIGKILL */
	HP_KILLED,   /* SIGKILL sent; waiting for the exit */
	HP_EXITED,   /* reaped; timer: how long to wait for the pipe's EOF */
};

struct hook_run {
	struct event_base *base;
	char *event;       /* for log lines */
	char *path;
	uint64_t timeout_ms;
	pid_t pid;         /* 0 once reaped */
	int pidfd;
	int pipefd;        /* read end, -1 after EOF */
	struct event *pid_ev;
	struct event *pipe_ev;
	struct event *timer;
	enum hook_phase phase;
	bool timed_out;
	int status;
	int signo;         /* killed by this signal, 0 if it exited */
	char *out;         /* HOOK_MAX_OUTPUT + 1 bytes */
	size_t outlen;
	size_t logged;     /* out[0..logged) already logged line by line */
	bool truncated;
	hook_done_cb done;
	void *arg;
};

#define HOOK_NENV 5 /* CUTOVER_* variables we set */

static char **build_env(const struct hook_env *env);
static void free_env(char **envp);
static int spawn(struct hook_run *run, char **envp);
static void pid_cb(evutil_socket_t fd, short what, void *arg);
static void pipe_cb(evutil_socket_t fd, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void arm(struct hook_run *run, uint64_t ms);
static void signal_hook(struct hook_run *run, int sig);
static void drain_pipe(struct hook_run *run);
static void close_pipe(struct hook_run *run);
static void log_lines(struct hook_run *run, bool flush);
static void maybe_finish(struct hook_run *run);
static void run_free(struct hook_run *run);

struct hook_run *
hook_start(struct event_base *base, const char *path, uint64_t timeout_ms,
    const struct hook_env *env, hook_done_cb done, void *arg)
{
	struct hook_run *run;
	char **envp = NULL;
	int saved;

	if ((run = calloc(1, sizeof(*run))) == NULL)
		return NULL;
	run->base = base;
	run->pidfd = -1;
	run->pipefd = -1;
	run->timeout_ms = timeout_ms;
	run->done = done;
	run->arg = arg;
	run->phase = HP_RUNNING;
	run->event = strdup(env->event != NULL ? env->event : "hook");
	run->path = strdup(path);
	run->out = malloc(HOOK_MAX_OUTPUT + 1);
	if (run->event == NULL || run->path == NULL || run->out == NULL)
		goto fail;
	if ((envp = build_env(env)) == NULL)
		goto fail;
	if ((run->timer = evtimer_new(base, timer_cb, run)) == NULL)
		goto fail;
	if (spawn(run, envp) < 0)
		goto fail;
	free_env(envp);
	envp = NULL;
	log_info("hook %s: started %s (pid %d)", run->event, run->path, (int)run->pid);
	if (timeout_ms > 0)
		arm(run, timeout_ms);
	return run;
fail:
	saved = errno;
	free_env(envp);
	if (run->pid > 0) {
		signal_hook(run, SIGKILL);
		while (waitpid(run->pid, NULL, 0) < 0 && errno == EINTR)
			continue;
		run->pid = 0;
	}
	run_free(run);
	errno = saved;
	return NULL;
}

void
hook_cancel(struct hook_run *run)
{
	if (run == NULL)
		return;
	if (run->pid > 0) {
		signal_hook(run, SIGKILL);
		/* SIGKILL cannot be caught: this wait is short. */
		while (waitpid(run->pid, NULL, 0) < 0 && errno == EINTR)
			continue;
		run->pid = 0;
		log_info("hook %s: cancelled, killed %s", run->event, run->path);
	}
	run_free(run);
}

/*
 * environ without the variables we set, then ours. Returns a NULL-terminated
 * array whose CUTOVER_* strings are owned by it (free_env), or NULL on ENOMEM.
 */
static char **
build_env(const struct hook_env *env)
{
	static const char *const ours[HOOK_NENV] = {"CUTOVER_EVENT=", "CUTOVER_FROM=", "CUTOVER_TO=",
	    "CUTOVER_GENERATION=", "CUTOVER_REASON="};
	const size_t nours = HOOK_NENV;
	char **envp, gen[32];
	size_t n = 0, k = 0, i, j;

	while (environ != NULL && environ[n] != NULL)
		n++;
	if ((envp = calloc(n + nours + 1, sizeof(*envp))) == NULL)
		goto fail;
	/* Our own strings go first: free_env() frees exactly those. */
	snprintf(gen, sizeof(gen), "%llu", (unsigned long long)env->generation);
	{
		const char *vals[] = {env->event, env->from, env->to, gen, env->reason};

		for (j = 0; j < nours; j++) {
			const char *v = vals[j] != NULL ? vals[j] : "";
			size_t len = strlen(ours[j]) + strlen(v) + 1;

			if ((envp[k] = malloc(len)) == NULL)
				goto fail;
			snprintf(envp[k], len, "%s%s", ours[j], v);
			k++;
		}
	}
	for (i = 0; i < n; i++) {
		bool replaced = false;

		for (j = 0; j < nours; j++)
			if (strncmp(environ[i], ours[j], strlen(ours[j])) == 0)
				replaced = true;
		if (!replaced)
			envp[k++] = environ[i];
	}
	envp[k] = NULL;
	return envp;
fail:
	if (envp != NULL)
		for (j = 0; j < nours; j++)
			free(envp[j]);
	free(envp);
	return NULL;
}

/* The first five entries are ours (build_env); the rest belong to environ. */
static void
free_env(char **envp)
{
	size_t j;

	if (envp == NULL)
		return;
	for (j = 0; j < HOOK_NENV; j++)
		free(envp[j]);
	free(envp);
}

/*
 * Starts the child in its own process group (so a timeout kill reaches what
 * it started too) with stdin from /dev/null and stdout+stderr into a pipe;
 * every other descriptor is closed in the child (closefrom), on top of the
 * daemon opening everything O_CLOEXEC. Sets up the pidfd and pipe events.
 * Returns -1 with errno set.
 */
static int
spawn(struct hook_run *run, char **envp)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char *argv[2] = {run->path, NULL};
	int p[2] = {-1, -1}, err, fl;
	bool fa_init = false, attr_init = false;

	if (pipe2(p, O_CLOEXEC) < 0)
		goto fail;
	if ((err = posix_spawn_file_actions_init(&fa)) != 0)
		goto fail_err;
	fa_init = true;
	if ((err = posix_spawnattr_init(&attr)) != 0)
		goto fail_err;
	attr_init = true;
	if ((err = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0)) != 0 ||
	    (err = posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO)) != 0 ||
	    (err = posix_spawn_file_actions_adddup2(&fa, p[1], STDERR_FILENO)) != 0 ||
	    (err = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1)) != 0)
		goto fail_err;
	if ((err = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
	    (err = posix_spawnattr_setflags(&attr,
	                (short)(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))) != 0)
		goto fail_err;
	/* The daemon may block or ignore signals; the hook starts clean. */
	{
		sigset_t none, all;

		sigemptyset(&none);
		sigfillset(&all);
		sigdelset(&all, SIGKILL);
		sigdelset(&all, SIGSTOP);
		if ((err = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
		    (err = posix_spawnattr_setsigdefault(&attr, &all)) != 0)
			goto fail_err;
	}
	/* glibc reports exec failures (ENOENT, EACCES) as the return value. */
	if ((err = posix_spawn(&run->pid, run->path, &fa, &attr, argv, envp)) != 0) {
		run->pid = 0;
		goto fail_err;
	}
	close(p[1]);
	p[1] = -1;
	run->pipefd = p[0];
	p[0] = -1;
	/* Nobody else reaps our children (no SIGCHLD handler), so the pid
	 * cannot have been reused before this. */
	if ((run->pidfd = pidfd_open(run->pid, 0)) < 0)
		goto fail;
	if ((fl = fcntl(run->pipefd, F_GETFL)) < 0 || fcntl(run->pipefd, F_SETFL, fl | O_NONBLOCK) < 0)
		goto fail;
	run->pid_ev = event_new(run->base, run->pidfd, EV_READ, pid_cb, run);
	run->pipe_ev = event_new(run->base, run->pipefd, EV_READ | EV_PERSIST, pipe_cb, run);
	if (run->pid_ev == NULL || run->pipe_ev == NULL) {
		errno = ENOMEM;
		goto fail;
	}
	if (event_add(run->pid_ev, NULL) < 0 || event_add(run->pipe_ev, NULL) < 0) {
		errno = ENOMEM;
		goto fail;
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return 0;
fail_err:
	errno = err;
fail:
	err = errno;
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_init)
		posix_spawnattr_destroy(&attr);
	errno = err;
	return -1;
}

static void
arm(struct hook_run *run, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	evtimer_add(run->timer, &tv);
}

/* Signals the hook's process group; only while it is not reaped, so that
 * the group id cannot belong to anyone else yet. */
static void
signal_hook(struct hook_run *run, int sig)
{
	if (run->pid <= 0)
		return;
	if (kill(-run->pid, sig) < 0 && kill(run->pid, sig) < 0 && errno != ESRCH)
		log_warn("%s: kill %d: %s", __func__, (int)run->pid, strerror(errno));
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hook_run *run = arg;

	(void)fd;
	(void)what;
	switch (run->phase) {
	case HP_RUNNING:
		run->timed_out = true;
		log_warn("%s: hook %s: %s timed out after %llums, sending SIGTERM", __func__, run->event, run->path,
		    (unsigned long long)run->timeout_ms);
		signal_hook(run, SIGTERM);
		run->phase = HP_TERM;
		arm(run, HOOK_KILL_AFTER_MS);
		break;
	case HP_TERM:
		log_warn("%s: hook %s: %s still running, sending SIGKILL", __func__, run->event, run->path);
		signal_hook(run, SIGKILL);
		run->phase = HP_KILLED;
		break;
	case HP_KILLED:
		break;
	case HP_EXITED:
		/* Exited, but something it started still holds the pipe. */
		drain_pipe(run);
		close_pipe(run);
		maybe_finish(run);
		break;
	}
}

/* The pidfd is readable: the child exited. Reap it. */
static void
pid_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hook_run *run = arg;
	siginfo_t si;

	(void)fd;
	(void)what;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PIDFD, (id_t)run->pidfd, &si, WEXITED | WNOHANG) < 0) {
		if (errno == EINTR || errno == EAGAIN) {
			event_add(run->pid_ev, NULL);
			return;
		}
		log_warn("%s: waitid %d: %s", __func__, (int)run->pid, strerror(errno));
		run->status = -1;
	} else if (si.si_pid == 0) {
		/* Spurious wakeup: not exited yet. */
		event_add(run->pid_ev, NULL);
		return;
	} else if (si.si_code == CLD_EXITED) {
		run->status = si.si_status;
	} else {
		run->status = -1;
		run->signo = si.si_status;
	}
	if (run->timed_out)
		run->status = -1;
	run->pid = 0;
	run->phase = HP_EXITED;
	evtimer_del(run->timer);
	if (run->pipefd >= 0)
		arm(run, HOOK_PIPE_GRACE_MS);
	maybe_finish(run);
}

static void
pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hook_run *run = arg;

	(void)fd;
	(void)what;
	drain_pipe(run);
	if (run->pipefd < 0)
		maybe_finish(run);
}

/*
 * Reads what is there (bounded per call so a chatty hook cannot starve the
 * loop), keeping the first HOOK_MAX_OUTPUT bytes and discarding the rest:
 * the pipe must never fill up, or the child blocks. Closes the pipe on EOF.
 */
static void
drain_pipe(struct hook_run *run)
{
	char scratch[4096];
	size_t total = 0;
	ssize_t n;

	while (run->pipefd >= 0 && total < HOOK_READ_PER_EVENT) {
		size_t room = HOOK_MAX_OUTPUT - run->outlen;

		if (room > 0)
			n = read(run->pipefd, run->out + run->outlen, room);
		else
			n = read(run->pipefd, scratch, sizeof(scratch));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_warn("%s: read: %s", __func__, strerror(errno));
				close_pipe(run);
			}
			break;
		}
		if (n == 0) {
			close_pipe(run);
			break;
		}
		total += (size_t)n;
		if (room > 0)
			run->outlen += (size_t)n;
		else
			run->truncated = true;
	}
	log_lines(run, run->pipefd < 0);
}

static void
close_pipe(struct hook_run *run)
{
	if (run->pipe_ev != NULL) {
		event_free(run->pipe_ev);
		run->pipe_ev = NULL;
	}
	if (run->pipefd >= 0) {
		close(run->pipefd);
		run->pipefd = -1;
	}
}

/* Logs each complete line captured since the last call (blank ones
 * skipped); flush: the last, unterminated one too. */
static void
log_lines(struct hook_run *run, bool flush)
{
	char *nl;

	while (run->logged < run->outlen) {
		char *line = run->out + run->logged;
		size_t len;

		nl = memchr(line, '\n', run->outlen - run->logged);
		if (nl == NULL) {
			/* A full buffer will not grow: log its tail now. */
			if (!flush && run->outlen < HOOK_MAX_OUTPUT)
				break;
			len = run->outlen - run->logged;
		} else
			len = (size_t)(nl - line);
		run->logged += len + (nl != NULL ? 1 : 0);
		while (len > 0 && isspace((unsigned char)line[len - 1]))
			len--;
		if (len == 0)
			continue;
		log_info("hook %s: %.*s", run->event, (int)len, line);
	}
}

/*
 * Calls back once the child was reaped and the pipe is closed. The output
 * handed on is made valid UTF-8 (a hook may print Latin-1, or be cut off
 * mid-character at HOOK_MAX_OUTPUT): it ends up in JSON answers and in the
 * audit history.
 */
static void
maybe_finish(struct hook_run *run)
{
	size_t n = run->outlen, k;
	struct jbuf text;

	if (run->phase != HP_EXITED || run->pipefd >= 0)
		return;
	evtimer_del(run->timer);
	if (run->truncated)
		log_info("hook %s: output over %d bytes, the rest was discarded", run->event, HOOK_MAX_OUTPUT);
	if (run->timed_out)
		log_warn("%s: hook %s: %s timed out and was killed", __func__, run->event, run->path);
	else if (run->signo != 0)
		log_warn("%s: hook %s: %s killed by signal %d", __func__, run->event, run->path, run->signo);
	else if (run->status != 0)
		log_warn("%s: hook %s: %s exited with status %d", __func__, run->event, run->path, run->status);
	else
		log_info("hook %s: %s exited with status 0", run->event, run->path);
	/* The cap may have cut a character in half: drop that half. */
	if (run->truncated)
		n = utf8_trim(run->out, n);
	while (n > 0 && isspace((unsigned char)run->out[n - 1]))
		n--;
	jbuf_init(&text);
	jbuf_utf8(&text, run->out, n);
	if (text.oom || text.s == NULL) {
		/* No memory for the copy: plain ASCII in place will do. */
		for (k = 0; k < n; k++)
			if ((unsigned char)run->out[k] >= 0x80 || run->out[k] == '\0')
				run->out[k] = '?';
		run->out[n] = '\0';
	}
	run->done(run->status, run->timed_out, text.oom || text.s == NULL ? run->out : text.s,
	    run->arg);
	jbuf_free(&text);
	run_free(run);
}

static void
run_free(struct hook_run *run)
{
	if (run == NULL)
		return;
	close_pipe(run);
	if (run->pid_ev != NULL)
		event_free(run->pid_ev);
	if (run->pidfd >= 0)
		close(run->pidfd);
	if (run->timer != NULL)
		event_free(run->timer);
	free(run->out);
	free(run->event);
	free(run->path);
	free(run);
}

/* A notification hook still running. */
struct hook_slot {
	TAILQ_ENTRY(hook_slot) link;
	struct hook_set *set;
	struct hook_run *run;
};

static void hook_slot_done(int status, bool timed_out, const char *output, void *arg);

void
hook_set_init(struct hook_set *set)
{
	TAILQ_INIT(&set->running);
}

int
hook_set_start(struct hook_set *set, struct event_base *base, const char *path,
    uint64_t timeout_ms, const struct hook_env *env)
{
	struct hook_slot *hs;
	int saved;

	if ((hs = calloc(1, sizeof(*hs))) == NULL)
		return -1;
	hs->set = set;
	if ((hs->run = hook_start(base, path, timeout_ms, env, hook_slot_done, hs)) == NULL) {
		saved = errno;
		free(hs);
		errno = saved;
		return -1;
	}
	TAILQ_INSERT_TAIL(&set->running, hs, link);
	return 0;
}

void
hook_set_cancel_all(struct hook_set *set)
{
	struct hook_slot *hs;

	while ((hs = TAILQ_FIRST(&set->running)) != NULL) {
		TAILQ_REMOVE(&set->running, hs, link);
		hook_cancel(hs->run);
		free(hs);
	}
}

static void
hook_slot_done(int status, bool timed_out, const char *output, void *arg)
{
	struct hook_slot *hs = arg;

	/* The run logged the outcome, with the path, the status or signal. */
	(void)status;
	(void)timed_out;
	(void)output;
	TAILQ_REMOVE(&hs->set->running, hs, link);
	free(hs);
}
