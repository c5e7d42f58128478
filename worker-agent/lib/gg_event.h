
/*
 * Copyright (C) gpugate authors
 *
 * A single-threaded event loop: level-triggered epoll for descriptors, a
 * binary heap of one-shot timers with microsecond resolution, and
 * SIGTERM, SIGINT, SIGHUP and SIGCHLD delivered through a signalfd so
 * that no handler runs in signal context.  They stay blocked in children
 * unless the child unblocks them before exec.
 *
 * An object that a handler closes may still be named by later events of
 * the same epoll batch: gg_defer_free() hands it to the loop, which frees
 * it once no event of the batch can name it any more.
 */


#ifndef _GG_EVENT_H_INCLUDED_
#define _GG_EVENT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>


typedef struct gg_loop_s   gg_loop_t;
typedef struct gg_io_s     gg_io_t;
typedef struct gg_timer_s  gg_timer_t;
typedef struct gg_defer_s  gg_defer_t;

typedef void (*gg_io_handler_pt)(gg_io_t *io, uint32_t revents);
typedef void (*gg_timer_handler_pt)(gg_timer_t *t);


struct gg_io_s {
    int                  fd;        /* owned by the user, not the loop */
    uint32_t             events;    /* the mask registered with epoll */
    gg_io_handler_pt     handler;   /* called with the returned events */
    void                *data;      /* the user's object */
};


struct gg_timer_s {
    uint64_t             when;      /* monotonic microseconds */
    size_t               slot;      /* heap index + 1; 0: not armed */
    gg_timer_handler_pt  handler;   /* called once when "when" passes */
    void                *data;      /* the user's object */
};


/* embedded in an object whose free() the loop defers */
struct gg_defer_s {
    gg_defer_t          *next;      /* in the loop's list */
    void                *ptr;       /* what to free(): the object */
};


struct gg_loop_s {
    int                  epfd;      /* the epoll instance */
    gg_io_t              sig;       /* signalfd for SIGTERM, SIGINT,
                                       SIGHUP and SIGCHLD */
    gg_timer_t         **heap;      /* armed timers, earliest first */
    size_t               nheap;     /* armed timers */
    size_t               heap_cap;  /* slots in "heap" */
    uint64_t             now;       /* cached clock, refreshed per wait */
    int                  stop;      /* set by a signal or gg_loop_stop */
    int                  signo;     /* the signal that stopped the loop */
    int                  no_pwait2; /* kernel (or valgrind) lacks it */
    void               (*on_hup)(gg_loop_t *loop);
                                    /* SIGHUP: called in the loop; NULL:
                                       the signal is ignored */
    void               (*on_child)(gg_loop_t *loop);
                                    /* SIGCHLD, likewise */
    gg_defer_t          *deferred;  /* objects to free after the batch */
};


uint64_t gg_time_us(void);

/* Blocks the signals above and creates the epoll and signal fds. */
int gg_loop_init(gg_loop_t *loop);
void gg_loop_free(gg_loop_t *loop);

/*
 * Registers "events" for io->fd: adds, modifies or (events == 0) removes
 * the registration as needed.  Cheap when the mask does not change.
 */
int gg_io_set(gg_loop_t *loop, gg_io_t *io, uint32_t events);

/* Arms (or re-arms) the timer "us" microseconds from the loop's now. */
int gg_timer_add(gg_loop_t *loop, gg_timer_t *t, uint64_t us);
void gg_timer_del(gg_loop_t *loop, gg_timer_t *t);

#define gg_timer_armed(t)  ((t)->slot != 0)

/*
 * free(ptr) once the current epoll batch (or timer run) is over; "d" lies
 * inside the object.  The caller has unregistered its descriptors and
 * timers and makes its handlers do nothing until then.
 */
void gg_defer_free(gg_loop_t *loop, gg_defer_t *d, void *ptr);

/* Runs until "stop" is set.  Returns 0, or -1 if epoll fails. */
int gg_loop_run(gg_loop_t *loop);


#endif /* _GG_EVENT_H_INCLUDED_ */
