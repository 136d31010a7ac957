/* sxfer bench pipe: the recorded session, the output files, the warming of
 * pages and the floor (tools/bench_pipe.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/sx_util.h"
#include "tools/bench_pipe.h"

#define CHECK_BUF (1u << 20)

int bp_interrupted(const bp_env *env, sx_err *err)
{
	return *env->stop ? sx_fail(err, SX_E_OTHER, "interrupted") : 0;
}

/* The CPU time of the calling thread: the floor is work on one core. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* -1 with errno, or errno 0 when the file ended first. */
static int pread_all(int fd, uint8_t *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t r = pread(fd, p, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* One record: random plaintext into the input file and the tree, then
 * sealed in place. */
static int record_one(bp_session *s, sx_rdir *d, sx_filehash *h, uint64_t i, sx_err *err)
{
	uint8_t *r = s->rec + i * s->stride;
	size_t plen = bp_plen(s, i), len = 0;
	if (RAND_bytes(r + SX_REC_HDR_LEN, (int)plen) != 1)
		return sx_fail_ssl(err, SX_E_OTHER, "no random bytes");
	if (pwrite_all(s->in_fd, r + SX_REC_HDR_LEN, plen, i * s->chunk) < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "writing %s", s->in_path);
	if (sx_filehash_update(h, r + SX_REC_HDR_LEN, plen, err) < 0 ||
	    sx_record_seal(d, SX_REC_DATA, 0, r, plen, &len, err) < 0)
		return -1;
	if (len != bp_rec_len(s, i))
		return sx_fail(err, SX_E_OTHER, "a sealed record of %zu bytes, not %zu", len,
			       bp_rec_len(s, i));
	return 0;
}

int bp_session_make(bp_session *s, sx_suite suite, uint64_t size, uint32_t chunk, uint32_t leaf,
		    const bp_env *env, sx_err *err)
{
	sx_rdir d = {0};
	sx_filehash h = {0};
	bool h_open = false;
	int rc = -1;
	s->suite = suite;
	s->size = size;
	s->chunk = chunk;
	s->leaf = leaf;
	s->nrec = (size + chunk - 1) / chunk;
	s->tag_len = sx_suite_tag_len(suite);
	s->stride = SX_REC_HDR_LEN + chunk + s->tag_len;
	SX_ENSURE(sx_mul_ok(s->nrec, s->stride, &s->rec_cap), err, SX_E_USAGE, "--size too large");
	s->rec = malloc(s->rec_cap);
	SX_ENSURE(s->rec != NULL, err, SX_E_OTHER, "out of memory for a recording of %zu bytes",
		  s->rec_cap);
	SX_ENSURE(RAND_bytes(s->secret, sizeof(s->secret)) == 1, err, SX_E_OTHER,
		  "no random bytes");
	s->in_fd = open(s->in_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (s->in_fd < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s", s->in_path);
		goto out;
	}
	SX_GUARD(sx_rdir_init(&d, suite, s->secret, 0, err));
	SX_GUARD(sx_filehash_init(&h, leaf, err));
	h_open = true;
	for (uint64_t i = 0; i < s->nrec; i++) {
		SX_GUARD(bp_interrupted(env, err));
		SX_GUARD(record_one(s, &d, &h, i, err));
	}
	SX_GUARD(sx_filehash_final(&h, s->root, NULL, NULL, err));
	rc = 0;
out:
	if (h_open)
		sx_filehash_free(&h);
	sx_rdir_free(&d);
	return rc;
}

void bp_session_free(bp_session *s)
{
	OPENSSL_cleanse(s->secret, sizeof(s->secret));
	free(s->rec);
	s->rec = NULL;
	if (s->in_fd >= 0) {
		close(s->in_fd);
		unlink(s->in_path);
	}
	s->in_fd = -1;
}

int bp_out_open(const bp_out *o, char path[BP_PATH_MAX], int *fd, sx_err *err)
{
	int n;
	*fd = -1;
	switch (o->kind) {
	case BP_OUT_DIR:
		n = snprintf(path, BP_PATH_MAX, "%s/sxfer-pipe-out.XXXXXX", o->path);
		if (n < 0 || n >= BP_PATH_MAX)
			return sx_fail(err, SX_E_IO, "%s: path too long", o->path);
		*fd = mkostemp(path, O_CLOEXEC);
		break;
	case BP_OUT_NAME:
		snprintf(path, BP_PATH_MAX, "%s", o->path);
		*fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		break;
	case BP_OUT_DEV:
		snprintf(path, BP_PATH_MAX, "%s", o->path);
		*fd = open(path, O_WRONLY | O_CLOEXEC);
		break;
	}
	if (*fd < 0)
		return sx_fail_errno(err, SX_E_IO, errno, "%s", path);
	return 0;
}

void bp_out_close(const bp_out *o, const char *path, int fd)
{
	if (fd < 0)
		return;
	close(fd);
	if (o->kind != BP_OUT_DEV)
		unlink(path);
}

int bp_out_check(const bp_session *s, int fd, const char *path, sx_err *err)
{
	uint8_t *a = malloc(CHECK_BUF), *b = malloc(CHECK_BUF);
	struct stat st;
	int rc = -1;
	SX_ENSURE(a != NULL && b != NULL, err, SX_E_OTHER, "out of memory");
	if (fstat(fd, &st) < 0) {
		sx_fail_errno(err, SX_E_IO, errno, "%s", path);
		goto out;
	}
	SX_ENSURE((uint64_t)st.st_size == s->size, err, SX_E_INTEGRITY,
		  "%s: %lld bytes written, not %llu", path, (long long)st.st_size,
		  (unsigned long long)s->size);
	for (uint64_t off = 0; off < s->size; off += CHECK_BUF) {
		size_t n = s->size - off < CHECK_BUF ? (size_t)(s->size - off) : CHECK_BUF;
		if (pread_all(fd, a, n, off) < 0 || pread_all(s->in_fd, b, n, off) < 0) {
			sx_fail_errno(err, SX_E_IO, errno ? errno : EIO, "reading back %s", path);
			goto out;
		}
		SX_ENSURE(memcmp(a, b, n) == 0, err, SX_E_INTEGRITY,
			  "%s differs from the plaintext in the MiB at byte %llu", path,
			  (unsigned long long)off);
	}
	rc = 0;
out:
	free(a);
	free(b);
	return rc;
}

int bp_warm(uint64_t mib, sx_err *err)
{
	size_t n = (size_t)mib << 20;
	if (mib == 0)
		return 0;
	uint8_t *p = malloc(n);
	if (p == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory for --warm %llu",
			       (unsigned long long)mib);
	for (size_t i = 0; i < n; i += 4096)
		p[i] = (uint8_t)i | 1;
	/* written for its side effect alone: the compiler must keep it */
	__asm__ volatile("" : : "r"(p) : "memory");
	free(p);
	return 0;
}

/* A record buffer laid out as the pipelines' (the payload on an
 * SX_DIO_ALIGN boundary); *mem is what to free. */
static uint8_t *rec_buf(const bp_session *s, uint8_t **mem)
{
	size_t len = SX_DIO_ALIGN + s->chunk + SX_REC_TAG_MAX + SX_DIO_ALIGN;
	len = (len + SX_DIO_ALIGN - 1) / SX_DIO_ALIGN * SX_DIO_ALIGN;
	*mem = aligned_alloc(SX_DIO_ALIGN, len);
	return *mem ? *mem + SX_DIO_ALIGN - SX_REC_HDR_LEN : NULL;
}

/* The receive floor: each record copied into one buffer, opened in place,
 * its plaintext hashed and written at its offset; each part timed alone. */
int bp_floor_recv(const bp_session *s, const bp_env *env, bp_floor *f, sx_err *err)
{
	char path[BP_PATH_MAX];
	uint8_t *mem = NULL, *b = rec_buf(s, &mem), *pt, type, flags, h[SX_HASH_LEN];
	uint64_t ns[4] = {0};
	size_t pt_len, body;
	sx_rdir d = {0};
	int fd = -1, rc = -1;
	SX_ENSURE(b != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_rdir_init(&d, s->suite, s->secret, 0, err));
	SX_GUARD(bp_out_open(env->out, path, &fd, err));
	for (uint64_t i = 0; i < s->nrec; i++) {
		size_t len = bp_rec_len(s, i);
		SX_GUARD(bp_interrupted(env, err));
		uint64_t t0 = cpu_ns();
		memcpy(b, bp_rec(s, i), len);
		__asm__ volatile("" : : "r"(b) : "memory");
		uint64_t t1 = cpu_ns();
		SX_GUARD(sx_record_check_header(&d, b, s->chunk + s->tag_len, &body, err));
		SX_GUARD(sx_record_open(&d, b, len, &type, &flags, &pt, &pt_len, err));
		uint64_t t2 = cpu_ns();
		SX_GUARD(sx_merkle_leaf(pt, pt_len, h, err));
		uint64_t t3 = cpu_ns();
		if (pwrite_all(fd, pt, pt_len, i * s->chunk) < 0) {
			sx_fail_errno(err, SX_E_IO, errno, "writing %s", path);
			goto out;
		}
		uint64_t t4 = cpu_ns();
		ns[0] += t1 - t0;
		ns[1] += t2 - t1;
		ns[2] += t3 - t2;
		ns[3] += t4 - t3;
	}
	*f = (bp_floor){.copy = (double)ns[0] / 1e9,
			.aead = (double)ns[1] / 1e9,
			.sha = (double)ns[2] / 1e9,
			.io = (double)ns[3] / 1e9};
	rc = 0;
out:
	bp_out_close(env->out, path, fd);
	sx_rdir_free(&d);
	free(mem);
	return rc;
}

/* The send floor: each chunk read from the input file into one buffer,
 * hashed and sealed in place; each part timed alone. */
int bp_floor_send(const bp_session *s, const bp_env *env, bp_floor *f, sx_err *err)
{
	uint8_t *mem = NULL, *b = rec_buf(s, &mem), h[SX_HASH_LEN];
	uint64_t ns[3] = {0};
	sx_rdir d = {0};
	size_t len;
	int rc = -1;
	SX_ENSURE(b != NULL, err, SX_E_OTHER, "out of memory");
	SX_GUARD(sx_rdir_init(&d, s->suite, s->secret, 0, err));
	for (uint64_t i = 0; i < s->nrec; i++) {
		size_t plen = bp_plen(s, i);
		SX_GUARD(bp_interrupted(env, err));
		uint64_t t0 = cpu_ns();
		if (pread_all(s->in_fd, b + SX_REC_HDR_LEN, plen, i * s->chunk) < 0) {
			sx_fail_errno(err, SX_E_IO, errno ? errno : EIO, "reading %s", s->in_path);
			goto out;
		}
		uint64_t t1 = cpu_ns();
		SX_GUARD(sx_merkle_leaf(b + SX_REC_HDR_LEN, plen, h, err));
		uint64_t t2 = cpu_ns();
		SX_GUARD(sx_record_seal(&d, SX_REC_DATA, 0, b, plen, &len, err));
		uint64_t t3 = cpu_ns();
		ns[0] += t1 - t0;
		ns[1] += t3 - t2;
		ns[2] += t2 - t1;
	}
	*f = (bp_floor){.copy = (double)ns[0] / 1e9,
			.aead = (double)ns[1] / 1e9,
			.sha = (double)ns[2] / 1e9,
			.io = 0};
	rc = 0;
out:
	sx_rdir_free(&d);
	free(mem);
	return rc;
}
