/* sxfer bench pipe: the figures (tools/bench_pipe.h). Every figure is
 * given as the min and the median over the runs: the min is the
 * like-for-like one (the run the machine disturbed least), the median the
 * typical one. CPU seconds per GiB are the process's (all threads); the
 * floor's are one thread's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sx_esc.h"
#include "tools/bench_pipe.h"
#include "tools/cli.h"

#define GIB 1073741824.0
#define MIB 1048576.0

typedef struct mm {
	double min, med;
} mm;

typedef struct figs {
	mm wall, gib_s, user, sys, cpu, floor, ratio, speedup;
	bool has_speedup;
} figs;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* v is sorted in place. */
static mm stat_of(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return (mm){.min = v[0], .med = med};
}

static double gib(const bp_bench *b)
{
	return (double)b->s.size / GIB;
}

typedef enum part { P_COPY = 0, P_AEAD, P_SHA, P_IO, P_UNSIGNED, P_SIGNED, P_PARTS } part;

static double part_of(const bp_floor *f, part p)
{
	switch (p) {
	case P_COPY: return f->copy;
	case P_AEAD: return f->aead;
	case P_SHA: return f->sha;
	case P_IO: return f->io;
	case P_UNSIGNED: return f->copy + f->aead + f->io;
	case P_SIGNED: return f->copy + f->aead + f->io + f->sha;
	default: return 0;
	}
}

/* A part of a side's floor, seconds per GiB. */
static mm floor_part(const bp_bench *b, int side, part p)
{
	double v[BP_RUNS_MAX];
	for (unsigned r = 0; r < b->runs; r++)
		v[r] = part_of(&b->floors[side * b->runs + r], p) / gib(b);
	return stat_of(v, b->runs);
}

static const char *part_name(int side, part p)
{
	static const char *const names[BP_SIDES][P_PARTS] = {
	    {"copy (memcpy, as recv)", "open", "sha256 leaves", "write (pwrite)", "floor unsigned",
	     "floor signed"},
	    {"read (pread)", "seal", "sha256 leaves", "-", "floor unsigned", "floor signed"},
	};
	return names[side][p];
}

static size_t conf_one_thread(const bp_bench *b, const bp_conf *c)
{
	for (size_t i = 0; i < b->nconf; i++)
		if (b->confs[i].side == c->side && b->confs[i].sign == c->sign &&
		    b->confs[i].threads == 1)
			return i;
	return SIZE_MAX;
}

static mm wall_of(const bp_bench *b, size_t c)
{
	double v[BP_RUNS_MAX];
	for (unsigned r = 0; r < b->runs; r++)
		v[r] = b->res[c * b->runs + r].wall;
	return stat_of(v, b->runs);
}

static void conf_figs(const bp_bench *b, size_t c, figs *f)
{
	const bp_conf *k = &b->confs[c];
	double u[BP_RUNS_MAX], s[BP_RUNS_MAX], t[BP_RUNS_MAX];
	for (unsigned r = 0; r < b->runs; r++) {
		const bp_result *x = &b->res[c * b->runs + r];
		u[r] = x->user / gib(b);
		s[r] = x->sys / gib(b);
		t[r] = (x->user + x->sys) / gib(b);
	}
	memset(f, 0, sizeof(*f));
	f->wall = wall_of(b, c);
	f->gib_s = (mm){.min = gib(b) / f->wall.min, .med = gib(b) / f->wall.med};
	f->user = stat_of(u, b->runs);
	f->sys = stat_of(s, b->runs);
	f->cpu = stat_of(t, b->runs);
	f->floor = floor_part(b, k->side, k->sign ? P_SIGNED : P_UNSIGNED);
	f->ratio = (mm){.min = f->cpu.min / f->floor.min, .med = f->cpu.med / f->floor.med};
	size_t one = conf_one_thread(b, k);
	if (one != SIZE_MAX) {
		mm w1 = wall_of(b, one);
		f->has_speedup = true;
		f->speedup = (mm){.min = w1.min / f->wall.min, .med = w1.med / f->wall.med};
	}
}

static const char *side_name(int side)
{
	return side == BP_RECV ? "receive" : "send";
}

static void print_header(const bp_bench *b)
{
	char size[32], chunk[32], leaf[32];
	sx_cli_human((double)b->s.size, size, sizeof(size));
	sx_cli_human((double)b->chunk, chunk, sizeof(chunk));
	sx_cli_human((double)b->leaf, leaf, sizeof(leaf));
	printf("sxfer bench pipe: %s in %llu records of %s (Merkle leaves of %s), %s, %s\n", size,
	       (unsigned long long)b->s.nrec, chunk, leaf, sx_suite_name(b->suite),
	       b->env.io_name ? b->env.io_name : "?");
	if (b->sides[BP_RECV]) {
		printf(
		    "  receive: each record copied from a session sealed beforehand into one of\n"
		    "           %d buffers (the copy recv() makes: counted, and in the floor),\n"
		    "           checked, opened, hashed, its plaintext written at its offset,\n"
		    "           several writes in flight, ",
		    BP_SLOTS);
		if (b->out.kind == BP_OUT_DEV)
			printf("to %s (no file: not checked)\n", SX_TEXT(b->out.path));
		else
			printf("to a new file\n           %s %s (%s), removed after each run\n",
			       b->out.kind == BP_OUT_DIR ? "in" : "named", SX_TEXT(b->out.path),
			       b->out.fs);
	}
	if (b->sides[BP_SEND])
		printf(
		    "  send:    each chunk read from the input file into one of %d buffers,\n"
		    "           hashed, sealed; the records written in order, one at a time, to\n"
		    "           /dev/null (sx_io write); input %s (%s)\n",
		    BP_SLOTS, SX_TEXT(b->s.in_path), b->tmp_fs);
	printf("  threads: 1 = everything on the loop thread; N = the loop and N-1 workers\n"
	       "           that open or seal and hash the leaves%s\n"
	       "  pages:   %llu MiB written and freed before each run and floor pass\n"
	       "  figures: min and median of the runs (throughput and speedup: of the min\n"
	       "           and median wall time); CPU: the process's, every thread\n"
	       "  checked: each signed run's Merkle root is the recording's; after the timed\n"
	       "           runs, one untimed run of each configuration checks:\n",
	       b->leaf == b->chunk
		   ? ""
		   : "\n           (leaves are not records here: hashed on the loop)",
	       (unsigned long long)b->warm_mib);
	if (b->sides[BP_RECV])
		printf("           %s\n", b->out.kind == BP_OUT_DEV
					      ? "no file written (the output is a device)"
					      : "the file written is the plaintext");
	if (b->sides[BP_SEND])
		printf("           the records sent are the recording's, byte for byte\n");
}

static void print_floor(const bp_bench *b)
{
	printf("\nfloor, one core (thread CPU seconds per GiB; min and median of %u passes):\n",
	       b->runs);
	printf("  %-8s %-24s %9s %9s\n", "side", "part", "min", "median");
	for (int side = 0; side < BP_SIDES; side++) {
		if (!b->sides[side])
			continue;
		for (part p = P_COPY; p < P_PARTS; p++) {
			if (side == BP_SEND && p == P_IO)
				continue;
			mm v = floor_part(b, side, p);
			printf("  %-8s %-24s %9.3f %9.3f\n", side_name(side), part_name(side, p),
			       v.min, v.med);
		}
	}
}

static void print_conf(const bp_bench *b, size_t c)
{
	const bp_conf *k = &b->confs[c];
	figs f;
	conf_figs(b, c, &f);
	for (int med = 0; med < 2; med++) {
		const char *stat = med ? "median" : "min";
#define PICK(x) (med ? (x).med : (x).min)
		printf("  %-8s %7u %-8s %-6s %8.3f %7.3f %8.1f %8.3f %8.3f %8.3f %8.3f %7.2f",
		       side_name(k->side), k->threads, k->sign ? "signed" : "unsigned", stat,
		       PICK(f.wall), PICK(f.gib_s), PICK(f.gib_s) * GIB / MIB, PICK(f.user),
		       PICK(f.sys), PICK(f.cpu), PICK(f.floor), PICK(f.ratio));
		if (f.has_speedup)
			printf(" %7.2f\n", PICK(f.speedup));
		else
			printf(" %7s\n", "-");
#undef PICK
	}
}

void bp_print_table(const bp_bench *b)
{
	print_header(b);
	print_floor(b);
	printf("\npipelines (min and median of %u runs; CPU seconds per GiB):\n", b->runs);
	printf("  %-8s %7s %-8s %-6s %8s %7s %8s %8s %8s %8s %8s %7s %7s\n", "side", "threads",
	       "signing", "stat", "wall_s", "GiB/s", "MiB/s", "user", "sys", "cpu", "floor",
	       "x_floor", "speedup");
	for (size_t c = 0; c < b->nconf; c++)
		print_conf(b, c);
}

static void json_mm(const char *key, mm v, const char *fmt_min, bool first)
{
	printf("%s\"%s\":{\"min\":", first ? "" : ",", key);
	printf(fmt_min, v.min);
	printf(",\"median\":");
	printf(fmt_min, v.med);
	printf("}");
}

static void json_floor(const bp_bench *b, int side)
{
	static const char *const keys[P_PARTS] = {"copy", "aead",     "sha256",
						  "io",	  "unsigned", "signed"};
	printf("\"%s\":{", side == BP_RECV ? "recv" : "send");
	for (part p = P_COPY; p < P_PARTS; p++)
		json_mm(keys[p], floor_part(b, side, p), "%.4f", p == P_COPY);
	printf("}");
}

static void json_conf(const bp_bench *b, size_t c)
{
	const bp_conf *k = &b->confs[c];
	figs f;
	conf_figs(b, c, &f);
	printf("{\"side\":\"%s\",\"threads\":%u,\"signed\":%s,",
	       k->side == BP_RECV ? "recv" : "send", k->threads, k->sign ? "true" : "false");
	json_mm("wall_s", f.wall, "%.4f", true);
	json_mm("gib_per_s", f.gib_s, "%.4f", false);
	json_mm("mib_per_s", (mm){.min = f.gib_s.min * 1024, .med = f.gib_s.med * 1024}, "%.1f",
		false);
	json_mm("user_s_per_gib", f.user, "%.4f", false);
	json_mm("sys_s_per_gib", f.sys, "%.4f", false);
	json_mm("cpu_s_per_gib", f.cpu, "%.4f", false);
	json_mm("floor_s_per_gib", f.floor, "%.4f", false);
	json_mm("cpu_over_floor", f.ratio, "%.3f", false);
	if (f.has_speedup)
		json_mm("speedup", f.speedup, "%.3f", false);
	else
		printf(",\"speedup\":null");
	printf("}");
}

void bp_print_json(const bp_bench *b)
{
	printf("{\"result\":\"ok\",\"bytes\":%llu,\"records\":%llu,\"chunk\":%u,\"leaf\":%u,"
	       "\"suite\":",
	       (unsigned long long)b->s.size, (unsigned long long)b->s.nrec, b->chunk, b->leaf);
	sx_cli_json_str(sx_suite_name(b->suite));
	printf(",\"io\":");
	sx_cli_json_str(b->env.io_name ? b->env.io_name : "");
	printf(",\"runs\":%u,\"warm_mib\":%llu,\"slots\":%d,\"tmp\":", b->runs,
	       (unsigned long long)b->warm_mib, BP_SLOTS);
	sx_cli_json_str(b->tmp);
	printf(",\"tmp_fs\":");
	sx_cli_json_str(b->tmp_fs);
	printf(",\"out\":");
	sx_cli_json_str(b->out.path);
	printf(",\"out_kind\":\"%s\",\"out_fs\":", b->out.kind == BP_OUT_DEV   ? "device"
						   : b->out.kind == BP_OUT_DIR ? "folder"
									       : "file");
	sx_cli_json_str(b->out.fs);
	printf(",\"recv_copy\":\"memcpy into the receive buffer, counted and in the floor\","
	       "\"send_sink\":\"/dev/null (sx_io write)\",\"file_checked\":%s,\"floor\":{",
	       b->out.kind == BP_OUT_DEV ? "false" : "true");
	bool first = true;
	for (int side = 0; side < BP_SIDES; side++) {
		if (!b->sides[side])
			continue;
		printf("%s", first ? "" : ",");
		json_floor(b, side);
		first = false;
	}
	printf("},\"configs\":[");
	for (size_t c = 0; c < b->nconf; c++) {
		printf("%s", c ? "," : "");
		json_conf(b, c);
	}
	printf("]}\n");
}
