// SPDX-License-Identifier: GPL-2.0
/*
 * Memory hog for nbd_swap.sh: more anonymous memory than the machine
 * has free, so that part of it must live on the swap device.
 *
 *	nbd_swap_hog hog MIB SECONDS [--break]
 *	nbd_swap_hog pattern MIB SEED
 *	nbd_swap_hog watch DEV [PID...]
 *
 * hog: map MIB MiB, fill every page with words derived from its index
 * and a generation number, then for SECONDS seconds walk the pages over
 * and over: each page must hold what was last written to it, and is
 * rewritten with the next generation (so stale data read back from swap
 * is caught, not only garbage).  A last pass checks every page.  Prints
 * one line per pass and a summary; exit 0 when no page was wrong, 1 when
 * some were, 2 on a usage or setup error.  --break corrupts one word on
 * purpose before the last pass, to show the check works.
 *
 * pattern: write MIB MiB of deterministic bytes derived from SEED to
 * stdout (the file system phase's data and its checksum's source).
 *
 * watch: with its memory locked, once a second look at /sys/block/DEV's
 * requests in flight and at the swap counters; when requests are in
 * flight and nothing moved for 15 s, have the kernel log the blocked
 * tasks' stacks and the memory state (sysrq w and m, through a
 * /proc/sysrq-trigger opened beforehand: the kernel does that work, with
 * no memory asked of the machine), then write where the server's
 * threads and the tasks in D state wait (reading /proc, which may block
 * on a stuck machine, so it comes last); again every 60 s while it
 * lasts, with sysrq l (what the CPUs run) from the second time on.  It
 * needs no memory of its own then: the report must come out when the
 * machine is stuck.  It also maps and
 * locks every file the PIDs (the servers) have mapped, their program and
 * libraries, so that their code stays in memory.  Runs until killed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE	4096UL
#define WORDS	(PAGE / sizeof(uint64_t))

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The word at index w of page p, generation g. */
static inline uint64_t word(uint64_t p, uint64_t w, uint64_t g)
{
	uint64_t x = (p << 24) ^ (g << 12) ^ w;

	/* splitmix64's finalizer: every bit depends on p, w and g */
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void fill(uint64_t *pg, uint64_t p, uint64_t g)
{
	uint64_t w;

	for (w = 0; w < WORDS; w++)
		pg[w] = word(p, w, g);
}

/* 0 when page p holds generation g, else the first bad word + 1. */
static uint64_t check(const uint64_t *pg, uint64_t p, uint64_t g)
{
	uint64_t w;

	for (w = 0; w < WORDS; w++)
		if (pg[w] != word(p, w, g))
			return w + 1;
	return 0;
}

static int hog(unsigned long mib, double seconds, int brk)
{
	uint64_t npages = mib * (1024 * 1024 / PAGE), p, bad = 0, w;
	uint32_t *gen;
	uint64_t *mem;
	double t0 = now(), tp, end;
	unsigned long pass = 0;

	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gen = calloc(npages, sizeof(*gen));
	if (mem == MAP_FAILED || !gen) {
		fprintf(stderr, "hog: cannot map %lu MiB: %s\n", mib,
			strerror(errno));
		return 2;
	}
	for (p = 0; p < npages; p++)
		fill(mem + p * WORDS, p, 0);
	printf("hog: %lu MiB (%llu pages) filled in %.1f s\n", mib,
	       (unsigned long long)npages, now() - t0);
	fflush(stdout);

	end = t0 + seconds;
	while (now() < end) {
		tp = now();
		pass++;
		/* Every other pass backwards: the LRU cannot settle. */
		for (uint64_t i = 0; i < npages; i++) {
			p = pass & 1 ? npages - 1 - i : i;
			w = check(mem + p * WORDS, p, gen[p]);
			if (w) {
				if (bad < 10)
					printf("hog: pass %lu: page %llu generation %u: word %llu is %016llx, want %016llx\n",
					       pass, (unsigned long long)p, gen[p],
					       (unsigned long long)(w - 1),
					       (unsigned long long)mem[p * WORDS + w - 1],
					       (unsigned long long)word(p, w - 1, gen[p]));
				bad++;
			}
			gen[p]++;
			fill(mem + p * WORDS, p, gen[p]);
			if ((i & 1023) == 0 && now() >= end)
				break;
		}
		printf("hog: pass %lu done in %.1f s, %llu bad pages so far\n",
		       pass, now() - tp, (unsigned long long)bad);
		fflush(stdout);
	}
	if (brk) {
		mem[(npages / 2) * WORDS + 7] ^= 1;
		printf("hog: --break: flipped a bit of page %llu\n",
		       (unsigned long long)(npages / 2));
	}
	tp = now();
	for (p = 0; p < npages; p++) {
		w = check(mem + p * WORDS, p, gen[p]);
		if (w) {
			if (bad < 10)
				printf("hog: last pass: page %llu generation %u: word %llu is %016llx, want %016llx\n",
				       (unsigned long long)p, gen[p],
				       (unsigned long long)(w - 1),
				       (unsigned long long)mem[p * WORDS + w - 1],
				       (unsigned long long)word(p, w - 1, gen[p]));
			bad++;
		}
	}
	printf("hog: last pass (check only) in %.1f s\n", now() - tp);
	printf("hog: result: %lu MiB, %lu passes, %llu bad pages, %.1f s\n",
	       mib, pass, (unsigned long long)bad, now() - t0);
	fflush(stdout);
	return bad ? 1 : 0;
}

static int pattern(unsigned long mib, uint64_t seed)
{
	static uint64_t buf[1024 * 1024 / sizeof(uint64_t)];
	unsigned long m;
	size_t i, off;
	ssize_t n;

	for (m = 0; m < mib; m++) {
		for (i = 0; i < sizeof(buf) / sizeof(buf[0]); i++)
			buf[i] = word(m, i, seed);
		for (off = 0; off < sizeof(buf); off += n) {
			n = write(1, (char *)buf + off, sizeof(buf) - off);
			if (n < 0) {
				if (errno == EINTR) {
					n = 0;
					continue;
				}
				fprintf(stderr, "pattern: write: %s\n",
					strerror(errno));
				return 1;
			}
		}
	}
	return 0;
}

static char wbuf[1024];

/* Read a small file into buf (NUL-terminated); its length, or -1. */
static ssize_t slurp(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return n;
}

static unsigned long long vmstat_get(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static void klog(int kfd, const char *line)
{
	if (write(kfd, line, strlen(line)) < 0)
		fputs(line, stderr);
}

static void sysrq(int sfd, const char *keys)
{
	for (; sfd >= 0 && *keys; keys++)
		if (write(sfd, keys, 1) < 0)
			break;
}

static void dump(int kfd, int sfd, const char *dev, unsigned long stalled,
		 int nth)
{
	static char line[1024], path[256], comm[64], st[1024], stack[4096];
	struct dirent *pd, *td;
	DIR *procd, *taskd;

	snprintf(line, sizeof(line),
		 "nbd_swap watch: %s: requests in flight, no swap progress for %lu s (report %d): sysrq %s\n",
		 dev, stalled, nth, nth > 1 ? "w m l" : "w m");
	klog(kfd, line);
	sysrq(sfd, nth > 1 ? "wml" : "wm");
	klog(kfd, "nbd_swap watch: end of sysrq; server threads and D tasks:\n");
	procd = opendir("/proc");
	if (!procd)
		return;
	while ((pd = readdir(procd))) {
		if (pd->d_name[0] < '0' || pd->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%.20s/task", pd->d_name);
		taskd = opendir(path);
		if (!taskd)
			continue;
		while ((td = readdir(taskd))) {
			char *p, *q, state = '?', *nl;
			size_t o;

			if (td->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%.20s/task/%.20s/comm",
				 pd->d_name, td->d_name);
			if (slurp(path, comm, sizeof(comm)) <= 0)
				continue;
			nl = strchr(comm, '\n');
			if (nl)
				*nl = 0;
			snprintf(path, sizeof(path), "/proc/%.20s/task/%.20s/stat",
				 pd->d_name, td->d_name);
			p = slurp(path, st, sizeof(st)) > 0 ?
			    strrchr(st, ')') : NULL;
			if (p && p[1])
				state = p[2];
			if (strcmp(comm, "nbdkit") && state != 'D')
				continue;
			snprintf(path, sizeof(path), "/proc/%.20s/task/%.20s/stack",
				 pd->d_name, td->d_name);
			if (slurp(path, stack, sizeof(stack)) < 0)
				stack[0] = 0;
			/* "[<0>] func+0x1/0x2\n" lines to "func <- func ..." */
			o = 0;
			for (p = stack; *p && o < 800; p = q) {
				char *f = strchr(p, ']'), *plus;

				q = strchr(p, '\n');
				q = q ? q + 1 : p + strlen(p);
				if (!f || f > q)
					continue;
				f += 2;
				plus = strchr(f, '+');
				if (!plus || plus > q)
					plus = q - 1;
				o += snprintf(wbuf + o, sizeof(wbuf) - o, "%s%.*s",
					      o ? " < " : "", (int)(plus - f), f);
			}
			wbuf[o] = 0;
			snprintf(line, sizeof(line),
				 "nbd_swap watch:   %.20s/%.20s %.16s %c: %.800s\n",
				 pd->d_name, td->d_name, comm, state, wbuf);
			klog(kfd, line);
		}
		closedir(taskd);
	}
	closedir(procd);
}

/* Lock in memory the files PID has mapped; how many were locked. */
static int lock_files(const char *pid)
{
	static char path[64], line[4096];
	char *file, *nl;
	int n = 0, fd;
	FILE *maps;
	void *p;
	off_t len;

	snprintf(path, sizeof(path), "/proc/%.20s/maps", pid);
	maps = fopen(path, "r");
	if (!maps)
		return 0;
	while (fgets(line, sizeof(line), maps)) {
		file = strchr(line, '/');
		if (!file || strstr(line, "(deleted)"))
			continue;
		nl = strchr(file, '\n');
		if (nl)
			*nl = 0;
		fd = open(file, O_RDONLY);
		if (fd < 0)
			continue;
		len = lseek(fd, 0, SEEK_END);
		p = len > 0 ? mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
		close(fd);
		/* The same file twice is locked twice: harmless. */
		if (p != MAP_FAILED && !mlock(p, len))
			n++;
	}
	fclose(maps);
	return n;
}

static int watch(const char *dev, char **pids)
{
	static char buf[16384], path[256];
	unsigned long long out, in, lout = 0, lin = 0, r = 0, w = 0;
	double last = now(), shown = 0;
	int kfd, sfd, nth = 0;

	if (mlockall(MCL_CURRENT | MCL_FUTURE))
		fprintf(stderr, "watch: mlockall: %s\n", strerror(errno));
	kfd = open("/dev/kmsg", O_WRONLY);
	if (kfd < 0)
		kfd = 2;
	sfd = open("/proc/sysrq-trigger", O_WRONLY);
	if (sfd < 0)
		fprintf(stderr, "watch: /proc/sysrq-trigger: %s\n", strerror(errno));
	for (; *pids; pids++)
		printf("watch: locked %d mappings of pid %s\n", lock_files(*pids), *pids);
	fflush(stdout);
	snprintf(path, sizeof(path), "/sys/block/%s/inflight", dev);
	for (;;) {
		sleep(1);
		if (slurp("/proc/vmstat", buf, sizeof(buf)) < 0)
			continue;
		out = vmstat_get(buf, "\npswpout ");
		in = vmstat_get(buf, "\npswpin ");
		if (slurp(path, buf, sizeof(buf)) < 0 ||
		    sscanf(buf, "%llu %llu", &r, &w) != 2)
			r = w = 0;
		if (out != lout || in != lin || r + w == 0) {
			lout = out;
			lin = in;
			last = now();
			shown = 0;
			nth = 0;
			continue;
		}
		if (now() - last >= 15 && (!shown || now() - shown >= 60)) {
			shown = now();
			dump(kfd, sfd, dev, (unsigned long)(now() - last), ++nth);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "watch"))
		return watch(argv[2], argv + 3);
	if (argc >= 4 && !strcmp(argv[1], "hog"))
		return hog(strtoul(argv[2], NULL, 0), strtod(argv[3], NULL),
			   argc > 4 && !strcmp(argv[4], "--break"));
	if (argc == 4 && !strcmp(argv[1], "pattern"))
		return pattern(strtoul(argv[2], NULL, 0),
			       strtoull(argv[3], NULL, 0));
	fprintf(stderr, "usage: %s hog MIB SECONDS [--break] | pattern MIB SEED | watch DEV\n",
		argv[0]);
	return 2;
}
