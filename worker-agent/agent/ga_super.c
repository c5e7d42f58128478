
/*
 * Copyright (C) gpugate authors
 *
 * Supervised runtimes ("runtime_command"): the agent starts the runtime,
 * waits for it to listen, restarts it with backoff when it dies, and
 * stops it after the drain.
 *
 * The command runs as "/bin/sh -c 'exec COMMAND'", so that the runtime
 * itself is the agent's child and gets the signals, in a process group of
 * its own (a runtime's helpers go with it) and with PR_SET_PDEATHSIG, so
 * that an agent killed with SIGKILL does not leave a GPU held by an
 * orphan.  The event loop blocks the signals it reads through a signalfd;
 * a blocked mask survives exec, so the child unblocks them first or the
 * runtime would ignore SIGTERM.
 *
 * Readiness is the probe's: the first probe that connects calls
 * ga_super_ready().  Death is SIGCHLD: the runtime is marked down at once
 * (its idle tunnels close, nginx sends its requests elsewhere) without
 * waiting for the next probe, and its model list is read again when it is
 * back.  A runtime that does not listen within runtime_start_timeout is
 * killed and started again.
 */


#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ga_agent.h"


#define GA_SUPER_BACKOFF_BASE  1000000ULL     /* us */
#define GA_SUPER_BACKOFF_CAP   60000000ULL    /* us */
#define GA_SUPER_STABLE        60000000ULL    /* up this long: backoff
                                                 starts over */
#define GA_SUPER_STOP_TIMEOUT  10000000ULL    /* SIGTERM, then SIGKILL */


static void ga_super_child(gg_loop_t *loop);
static void ga_super_timer(gg_timer_t *t);
static void ga_super_exec(ga_runtime_t *rt);


/* ga_super_stop_all() was called: the loop ends with the last child */
static int  ga_super_stopping;


/* SIGCHLD comes through the event loop */

int
ga_super_init(void)
{
    int  r;

    for (r = 0; r < ga_agent.conf.nruntimes; r++) {
        ga_agent.runtimes[r].super.timer.handler = ga_super_timer;
        ga_agent.runtimes[r].super.timer.data = &ga_agent.runtimes[r];
    }

    ga_agent.loop.on_child = ga_super_child;

    return 0;
}


void
ga_super_start(ga_runtime_t *rt)
{
    int          pid;
    ga_super_t  *s;

    s = &rt->super;

    if (s->pid != 0 || s->stopping || ga_agent.draining) {
        return;
    }

    pid = fork();

    if (pid == -1) {
        ga_log(GA_ERROR, "runtime \"%s\": fork: %s; trying again",
               rt->conf->name, strerror(errno));
        s->restarts++;
        (void) gg_timer_add(&ga_agent.loop, &s->timer,
                            GA_SUPER_BACKOFF_CAP);
        return;
    }

    if (pid == 0) {
        ga_super_exec(rt);
        _exit(127);
    }

    /* also here: a kill(-pid) must not race the child's own setpgid() */
    (void) setpgid(pid, pid);

    s->pid = pid;
    s->started = gg_time_us();
    s->ready = 0;

    ga_log(GA_INFO, "runtime \"%s\": started pid %d: %s", rt->conf->name,
           pid, rt->conf->command);

    /* it must listen before the deadline, or it is killed and restarted */
    (void) gg_timer_add(&ga_agent.loop, &s->timer,
                        rt->conf->start_timeout * 1000000ULL);

    ga_probe_now(rt);
}


/* in the child, between fork() and exec() */

static void
ga_super_exec(ga_runtime_t *rt)
{
    int       fd;
    char     *cmd;
    size_t    n;
    sigset_t  all;

    sigfillset(&all);
    (void) sigprocmask(SIG_UNBLOCK, &all, NULL);
    (void) signal(SIGPIPE, SIG_DFL);

    (void) setpgid(0, 0);
    (void) prctl(PR_SET_PDEATHSIG, SIGTERM);

    if (getppid() == 1) {
        /* the agent died before prctl(): nobody would stop us */
        _exit(127);
    }

    /* its output joins the agent's in the journal; no terminal input */

    fd = open("/dev/null", O_RDONLY);

    if (fd != -1) {
        (void) dup2(fd, STDIN_FILENO);
        close(fd);
    }

    (void) dup2(STDERR_FILENO, STDOUT_FILENO);

    n = strlen(rt->conf->command);
    cmd = malloc(n + sizeof("exec "));

    if (cmd == NULL) {
        _exit(127);
    }

    memcpy(cmd, "exec ", 5);
    memcpy(cmd + 5, rt->conf->command, n + 1);

    execl("/bin/sh", "sh", "-c", cmd, (char *) NULL);

    dprintf(STDERR_FILENO, "gpugate-agent: runtime \"%s\": /bin/sh: %s\n",
            rt->conf->name, strerror(errno));
}


/* the probe found it listening */

void
ga_super_ready(ga_runtime_t *rt)
{
    ga_super_t  *s;

    s = &rt->super;

    if (s->pid == 0 || s->ready) {
        return;
    }

    s->ready = gg_time_us();
    gg_timer_del(&ga_agent.loop, &s->timer);

    ga_log(GA_INFO, "runtime \"%s\": pid %d listens after %llu ms",
           rt->conf->name, s->pid,
           (unsigned long long) (s->ready - s->started) / 1000);
}


static void
ga_super_child(gg_loop_t *loop)
{
    int            r, pid, status, left;
    char           how[64];
    uint64_t       delay, cap;
    ga_super_t    *s;
    ga_runtime_t  *rt;

    (void) loop;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {

        for (r = 0; r < ga_agent.conf.nruntimes; r++) {
            if (ga_agent.runtimes[r].super.pid == pid) {
                break;
            }
        }

        if (r == ga_agent.conf.nruntimes) {
            continue;
        }

        rt = &ga_agent.runtimes[r];
        s = &rt->super;
        s->pid = 0;
        gg_timer_del(&ga_agent.loop, &s->timer);

        if (WIFEXITED(status)) {
            snprintf(how, sizeof(how), "exited with status %d",
                     WEXITSTATUS(status));
        } else {
            snprintf(how, sizeof(how), "killed by signal %d",
                     WTERMSIG(status));
        }

        if (s->stopping) {
            ga_log(GA_INFO, "runtime \"%s\" (pid %d) stopped: %s",
                   rt->conf->name, pid, how);
            continue;
        }

        /* no capacity now, not at the next probe */
        ga_agent.on.runtime_down(rt, 1, how);

        if (ga_agent.draining) {
            ga_log(GA_WARN, "runtime \"%s\" (pid %d) %s during the drain",
                   rt->conf->name, pid, how);
            continue;
        }

        if (s->ready && gg_time_us() - s->started >= GA_SUPER_STABLE) {
            s->restarts = 0;
        }

        cap = GA_SUPER_BACKOFF_BASE << (s->restarts > 6 ? 6 : s->restarts);
        cap = cap > GA_SUPER_BACKOFF_CAP ? GA_SUPER_BACKOFF_CAP : cap;

        /* half fixed, half jitter: never at once, never in step */
        delay = cap / 2 + (uint64_t) random() % (cap / 2 + 1);
        s->restarts++;

        ga_log(GA_WARN, "runtime \"%s\" (pid %d) %s; restart %d in %llu ms",
               rt->conf->name, pid, how, s->restarts,
               (unsigned long long) delay / 1000);

        (void) gg_timer_add(&ga_agent.loop, &s->timer, delay);
    }

    if (ga_super_stopping) {
        left = ga_super_running();

        if (left == 0) {
            /* the stop after the drain is over */
            ga_agent.loop.stop = 1;
        }
    }
}


/*
 * One timer, three meanings: restart after a death (no process), the
 * start deadline (running, never listened), the stop deadline (stopping).
 */

static void
ga_super_timer(gg_timer_t *t)
{
    ga_super_t    *s;
    ga_runtime_t  *rt;

    rt = t->data;
    s = &rt->super;

    if (s->pid == 0) {
        ga_super_start(rt);
        return;
    }

    if (s->stopping) {
        ga_log(GA_WARN, "runtime \"%s\" (pid %d) ignored SIGTERM for %llu "
               "s: SIGKILL", rt->conf->name, s->pid,
               GA_SUPER_STOP_TIMEOUT / 1000000ULL);
        (void) kill(-s->pid, SIGKILL);
        return;
    }

    ga_log(GA_ERROR, "runtime \"%s\" (pid %d) did not listen at %s:%s "
           "within runtime_start_timeout (%d s): killed, to be restarted",
           rt->conf->name, s->pid, rt->conf->url.host, rt->conf->url.port,
           rt->conf->start_timeout);

    (void) kill(-s->pid, SIGKILL);
}


/* after the drain: SIGTERM to each process group, SIGKILL if it stays */

void
ga_super_stop_all(void)
{
    int            r;
    ga_super_t    *s;
    ga_runtime_t  *rt;

    ga_super_stopping = 1;

    for (r = 0; r < ga_agent.conf.nruntimes; r++) {
        rt = &ga_agent.runtimes[r];
        s = &rt->super;

        if (s->pid == 0) {
            gg_timer_del(&ga_agent.loop, &s->timer);
            continue;
        }

        ga_log(GA_INFO, "runtime \"%s\": stopping pid %d", rt->conf->name,
               s->pid);

        s->stopping = 1;
        (void) kill(-s->pid, SIGTERM);
        (void) gg_timer_add(&ga_agent.loop, &s->timer,
                            GA_SUPER_STOP_TIMEOUT);
    }

    if (ga_super_running() == 0) {
        ga_agent.loop.stop = 1;
    }
}


int
ga_super_running(void)
{
    int  r, n;

    n = 0;

    for (r = 0; r < ga_agent.conf.nruntimes; r++) {
        n += ga_agent.runtimes[r].super.pid != 0;
    }

    return n;
}
