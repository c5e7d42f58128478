
/*
 * Copyright (C) gpugate authors
 *
 * GPU and host telemetry that the agent sends to the gateway
 * (X-Gpugate-Telemetry in the handshake and in ping answers), so that an
 * operator sees what each worker machine is doing without a second
 * monitoring agent.  Host figures come from /proc; GPU figures from NVML,
 * loaded with dlopen() so that one binary runs on machines with and
 * without the NVIDIA driver.  The parsers and the formatter are pure, for
 * unit tests and fuzzing; only ga_telemetry_open() and ga_telemetry_read()
 * touch the system.
 */


#ifndef _GA_TELEMETRY_H_INCLUDED_
#define _GA_TELEMETRY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define GA_TELEMETRY_GPUS_MAX    16
#define GA_TELEMETRY_NAME_SIZE   96     /* NVML's own name buffer size */
#define GA_TELEMETRY_NAME_MAX    63     /* name bytes on the wire */
#define GA_TELEMETRY_REASON_SIZE 160
#define GA_TELEMETRY_MAX         2048   /* the gateway's limit, bytes */


typedef struct {
    uint64_t     busy;         /* jiffies not idle, since boot */
    uint64_t     total;        /* all jiffies, since boot */
} ga_cpu_times_t;


typedef struct {
    unsigned     index;        /* NVML index, gpu= on the wire */
    char         name[GA_TELEMETRY_NAME_SIZE]; /* as NVML gives it,
                                                  NUL-terminated; "" when
                                                  unknown */
    unsigned     util_pct;     /* busy over NVML's last sample period */
    uint64_t     mem_used_mb;  /* MiB */
    uint64_t     mem_total_mb; /* MiB */
    uint64_t     mem_free_mb;  /* MiB, for gpu_free_mb in the load */
    unsigned     temp_c;       /* core temperature */
    unsigned     power_w;      /* board power draw */
    unsigned     has_util:1;   /* the NVML call for the field worked */
    unsigned     has_mem:1;
    unsigned     has_temp:1;
    unsigned     has_power:1;
} ga_telemetry_gpu_t;


typedef struct {
    unsigned            cpu_pct;       /* 0..100 since the last read */
    unsigned            cpus;          /* online, 0 when unknown */
    uint64_t            mem_used_mb;   /* total - available */
    uint64_t            mem_total_mb;  /* 0 when unknown */
    unsigned            ngpus;         /* entries in gpu[] */
    ga_telemetry_gpu_t  gpu[GA_TELEMETRY_GPUS_MAX];
} ga_telemetry_snapshot_t;


typedef struct ga_nvml_s  ga_nvml_t;


typedef struct {
    ga_telemetry_snapshot_t  snap;        /* the last ga_telemetry_read() */
    ga_cpu_times_t           cpu_prev;    /* its /proc/stat sample */
    unsigned                 has_prev:1;  /* cpu_prev is set */
    ga_nvml_t               *nvml;        /* NULL: no GPU */
    char                     reason[GA_TELEMETRY_REASON_SIZE];
                                          /* why no GPU, one line; "" when
                                             NVML is in use */
} ga_telemetry_t;


/*
 * The aggregate "cpu " line of /proc/stat: busy is user + nice + system +
 * irq + softirq + steal (guest time is already inside user), total adds
 * idle and iowait.  The line must end in "\n" so that a cut read is not
 * taken for smaller counters.  0 or -1.
 */
int ga_telemetry_parse_stat(const char *text, size_t len, ga_cpu_times_t *t);

/* busy percentage between two samples; 0 when no time passed or the
   counters went backwards, at most 100 */
double ga_telemetry_cpu_pct(const ga_cpu_times_t *prev,
    const ga_cpu_times_t *now);

/* MemTotal and MemAvailable from /proc/meminfo, in kB; both needed */
int ga_telemetry_parse_meminfo(const char *text, size_t len,
    uint64_t *total_kb, uint64_t *avail_kb);

/*
 * Loads NVML from "lib" (NULL: libnvidia-ml.so.1) and finds the GPUs.
 * Returns 0 when NVML is in use, or -1 with the one-line reason in
 * t->reason (no library, a missing symbol, no driver or no GPU); either
 * way t then serves ga_telemetry_read() for the host figures, and needs
 * ga_telemetry_close().
 */
int ga_telemetry_open(ga_telemetry_t *t, const char *lib);

/*
 * Samples the host and the GPUs into t->snap.  cpu_pct is over the time
 * since the previous call (0 on the first).  What cannot be read is left
 * unknown; returns 0, or -1 when /proc/stat or /proc/meminfo could not be
 * read (the rest of the snapshot is still filled).
 */
int ga_telemetry_read(ga_telemetry_t *t);

/* nvmlShutdown() and dlclose(); t may be closed again or opened again */
void ga_telemetry_close(ga_telemetry_t *t);

/*
 * The X-Gpugate-Telemetry value of t->snap, without name or CRLF:
 *
 *   cpu_pct=<n>, cpus=<n>, mem_used_mb=<n>, mem_total_mb=<n>, gpus=<n>
 *   then per GPU "; gpu=<i>, name="<name>", util_pct=<n>, mem_used_mb=<n>,
 *   mem_total_mb=<n>, temp_c=<n>, power_w=<n>"
 *
 * with unknown GPU fields left out.  The name has every byte that is not
 * printable ASCII, and every '"' and '\', replaced by '?', and is cut at
 * GA_TELEMETRY_NAME_MAX bytes; an unknown name is sent as "?".  Numbers
 * are clamped to 2^32-1.  Returns the length, NUL written after it, or 0
 * when it does not fit in "size" or is longer than GA_TELEMETRY_MAX.
 */
size_t ga_telemetry_format(const ga_telemetry_t *t, char *buf, size_t size);

/* the most free memory of any one GPU, MiB; 0 without GPUs */
uint64_t ga_telemetry_gpu_free_mb(const ga_telemetry_t *t);


#endif /* _GA_TELEMETRY_H_INCLUDED_ */
