#include "testutil.h"

#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/transfer/sx_held.h"
#include "engine/transfer/sx_store.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = sx_test_tmpdir();
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	sx_test_rmtree(dir);
	free(dir);
	return 0;
}

static int exists(const char *rel)
{
	char p[1024];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return lstat(p, &st) == 0;
}

static void test_store_commit(void **state)
{
	(void)state;
	sx_store st;
	sx_store_file f;
	sx_err err = {0};
	char out[600];
	snprintf(out, sizeof(out), "%s/out", dir);
	assert_int_equal(sx_store_open(&st, out, "cam-01", false, &err), 0);
	const char *rel = "a/b/c.bin";
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)rel, strlen(rel), &f, &err), 0);
	assert_int_equal(write(f.fd, "data", 4), 4);
	assert_false(exists("out/cam-01/a/b/c.bin"));
	struct timespec mt = {.tv_sec = 1000000000, .tv_nsec = 5};
	assert_int_equal(sx_store_meta(&f, 0640, &mt, &err), 0);
	assert_int_equal(sx_store_commit(&st, &f, &err), 0);
	sx_store_end(&f);
	assert_true(exists("out/cam-01/a/b/c.bin"));
	/* A second file under the same name is refused at begin. */
	sx_err_clear(&err);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)rel, strlen(rel), &f, &err), -1);
	assert_int_equal(err.cls, SX_E_IO);
	assert_non_null(strstr(err.msg, "exists"));
	sx_store_close(&st);
}

static void test_store_abort_removes_temporary(void **state)
{
	(void)state;
	sx_store st;
	sx_store_file f;
	sx_err err = {0};
	char out[600], tmp[900];
	snprintf(out, sizeof(out), "%s/out2", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"x", 1, &f, &err), 0);
	snprintf(tmp, sizeof(tmp), "out2/cam/%s", f.tmp);
	assert_true(exists(tmp));
	sx_store_end(&f);
	assert_false(exists(tmp));
	assert_false(exists("out2/cam/x"));
	sx_store_close(&st);
}

static void test_store_refuses_escape(void **state)
{
	(void)state;
	sx_store st;
	sx_store_file f;
	sx_err err = {0};
	char out[600], link[700], target[700];
	snprintf(out, sizeof(out), "%s/out3", dir);
	snprintf(target, sizeof(target), "%s/outside", dir);
	assert_int_equal(mkdir(target, 0755), 0);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	/* A symlink planted in the output folder is not followed. */
	snprintf(link, sizeof(link), "%s/cam/evil", out);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"evil/x", 6, &f, &err), -1);
	assert_false(exists("outside/x"));
	const char *bad[] = {"../x", "/etc/x", "a/../../x", "a//b", ".", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sx_err_clear(&err);
		assert_int_equal(
		    sx_store_begin(&st, (const uint8_t *)bad[i], strlen(bad[i]), &f, &err), -1);
	}
	/* A final name that is a symlink is refused, not followed. */
	char flink[800];
	snprintf(flink, sizeof(flink), "%s/cam/f", out);
	assert_int_equal(symlink("/etc/passwd", flink), 0);
	sx_err_clear(&err);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"f", 1, &f, &err), -1);
	sx_store_close(&st);
	/* A peer name cannot be a path. */
	sx_err_clear(&err);
	assert_int_equal(sx_store_open(&st, out, "../x", false, &err), -1);
	sx_err_clear(&err);
	assert_int_equal(sx_store_open(&st, out, "a/b", false, &err), -1);
}

static void test_store_overwrite(void **state)
{
	(void)state;
	sx_store st;
	sx_store_file f;
	sx_err err = {0};
	char out[600];
	snprintf(out, sizeof(out), "%s/out4", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", true, &err), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sx_store_begin(&st, (const uint8_t *)"same", 4, &f, &err), 0);
		assert_int_equal(write(f.fd, i ? "22" : "1", i ? 2 : 1), i ? 2 : 1);
		assert_int_equal(sx_store_commit(&st, &f, &err), 0);
		sx_store_end(&f);
	}
	struct stat sb;
	char p[700];
	snprintf(p, sizeof(p), "%s/cam/same", out);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_size, 2);
	sx_store_close(&st);
}

static void test_store_temp_names(void **state)
{
	(void)state;
	size_t base = 0;
	assert_true(sx_store_temp_name(".a.bin.0123456789ab.sxpart", &base));
	assert_int_equal(base, 5);
	assert_true(sx_store_temp_name(".x.00000000000a.sxckpt", NULL));
	assert_true(sx_store_temp_name(".x.00000000000a.sxckpt-new", NULL));
	assert_false(sx_store_temp_name("a.0123456789ab.sxpart", NULL));
	assert_false(sx_store_temp_name(".a.0123456789AB.sxpart", NULL));
	assert_false(sx_store_temp_name(".a.0123456789a.sxpart", NULL));
	assert_false(sx_store_temp_name("..0123456789ab.sxpart", NULL));
	assert_false(sx_store_temp_name("plain.sxpart", NULL));
	/* Refused as a received name: the start-up scan would remove it. */
	sx_store st;
	sx_store_file f;
	sx_err err = {0};
	char out[600];
	snprintf(out, sizeof(out), "%s/out-tn", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	const char *rel = "d/.a.bin.0123456789ab.sxpart";
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)rel, strlen(rel), &f, &err), -1);
	assert_int_equal(err.cls, SX_E_IO);
	assert_non_null(strstr(err.msg, "temporary"));
	sx_store_close(&st);
}

/* The checkpoint file lives and goes with its temporary; at the next start
 * a temporary whose prefix no longer matches its checkpoint is removed with
 * it, and so is every other temporary. */
static void test_store_ckpt_and_recover(void **state)
{
	(void)state;
	sx_store st;
	sx_store_file f;
	sx_err err = {0};
	char out[600], ck[900], tmp[900];
	snprintf(out, sizeof(out), "%s/out-ck", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"s.ts", 4, &f, &err), 0);
	assert_int_equal(sx_store_ckpt_write(&f, "one", 3, &err), 0);
	assert_int_equal(sx_store_ckpt_write(&f, "two", 3, &err), 0);
	snprintf(ck, sizeof(ck), "out-ck/cam/%s", f.ckpt);
	snprintf(tmp, sizeof(tmp), "out-ck/cam/%s", f.tmp);
	assert_true(exists(ck));
	/* A crash here: temporary and checkpoint (not a valid .sxsig) stay. */
	char keep_tmp[300], keep_ck[300];
	snprintf(keep_tmp, sizeof(keep_tmp), "%s", f.tmp);
	snprintf(keep_ck, sizeof(keep_ck), "%s", f.ckpt);
	f.tmp[0] = '\0'; /* not removed by sx_store_end, as after kill -9 */
	f.ckpt[0] = '\0';
	sx_store_end(&f);
	assert_true(exists(tmp) && exists(ck));
	/* Another file's temporary left over, and a normal end that removes its
	 * checkpoint with it. */
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"t.bin", 5, &f, &err), 0);
	char other[900];
	snprintf(other, sizeof(other), "out-ck/cam/%s", f.tmp);
	f.tmp[0] = '\0';
	sx_store_end(&f);
	assert_true(exists(other));
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"u.ts", 4, &f, &err), 0);
	assert_int_equal(sx_store_ckpt_write(&f, "x", 1, &err), 0);
	snprintf(ck, sizeof(ck), "out-ck/cam/%s", f.ckpt);
	sx_store_end(&f);
	assert_false(exists(ck));
	sx_store_close(&st);

	int ofd = open(out, O_RDONLY | O_DIRECTORY);
	assert_true(ofd >= 0);
	sx_store_recovery rec;
	assert_int_equal(sx_store_recover(ofd, &rec, &err), 0);
	close(ofd);
	assert_int_equal(rec.kept, 0);
	assert_int_equal(rec.removed, 3);
	snprintf(tmp, sizeof(tmp), "out-ck/cam/%s", keep_tmp);
	snprintf(ck, sizeof(ck), "out-ck/cam/%s", keep_ck);
	assert_false(exists(tmp));
	assert_false(exists(ck));
	assert_false(exists(other));
	assert_false(exists("out-ck/cam/s.ts.partial"));
}

/* A get killed while NAME.sxsig was being written leaves that companion's
 * temporary; the next get of NAME removes it, and nothing of other names. */
static void test_recover_names_companions(void **state)
{
	(void)state;
	char out[600], p[900];
	sx_err err = {0};
	static const char *const left[] = {".big.bin.sxsig.466a008b6128.sxpart",
					   ".big.bin.partial.sxsig.466a008b6129.sxpart",
					   ".big.bin.466a008b612a.sxpart"};
	static const char *const kept[] = {".other.bin.sxsig.466a008b612b.sxpart",
					   ".big.binx.466a008b612c.sxpart", "big.bin.sxsig"};
	snprintf(out, sizeof(out), "%s/out-names", dir);
	assert_int_equal(mkdir(out, 0700), 0);
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", out, left[i]);
		close(open(p, O_CREAT | O_WRONLY, 0600));
		snprintf(p, sizeof(p), "%s/%s", out, kept[i]);
		close(open(p, O_CREAT | O_WRONLY, 0600));
	}
	int ofd = open(out, O_RDONLY | O_DIRECTORY);
	assert_true(ofd >= 0);
	const char *names[] = {"big.bin"};
	sx_store_recovery rec;
	assert_int_equal(sx_store_recover_names(ofd, names, 1, &rec, &err), 0);
	close(ofd);
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "out-names/%s", left[i]);
		if (exists(p))
			fail_msg("left: %s", left[i]);
		snprintf(p, sizeof(p), "out-names/%s", kept[i]);
		if (!exists(p))
			fail_msg("removed: %s", kept[i]);
	}
}

/* A file whose final name is taken while it waits (another file of the
 * session got there first) is refused at commit: its companion, renamed
 * into place just before, must not stay behind as a stray NAME.sxsig. */
static void test_store_refused_commit_leaves_no_companion(void **state)
{
	(void)state;
	sx_store st;
	sx_store_file f;
	sx_err err = {0};
	char out[600], taken[800];
	snprintf(out, sizeof(out), "%s/out5", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"X.sxsig", 7, &f, &err), 0);
	assert_int_equal(write(f.fd, "data", 4), 4);
	assert_int_equal(sx_store_aux_write(&f, ".sxsig", "sig\n", 4, &err), 0);
	snprintf(taken, sizeof(taken), "%s/cam/X.sxsig", out);
	int fd = open(taken, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sx_store_commit(&st, &f, &err), -1);
	assert_int_equal(err.cls, SX_E_IO);
	assert_non_null(strstr(err.msg, "exists"));
	sx_store_end(&f);
	assert_false(exists("out5/cam/X.sxsig.sxsig"));
	struct stat sb;
	assert_int_equal(stat(taken, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	/* Nothing else: no temporary of either. */
	char folder[700];
	snprintf(folder, sizeof(folder), "%s/cam", out);
	DIR *d = opendir(folder);
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	assert_int_equal(n, 1);
	sx_store_close(&st);
}

static void sample_meta(sx_held_meta *m, uint64_t held)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "big.bin");
	memset(m->fingerprint, 'c', 64);
	m->size = 5000;
	m->leaf = 1024;
	m->held = held;
	m->kept = 1700000000;
	m->mode = 0644;
	m->mtime_sec = -5;
	m->mtime_nsec = 7;
	m->sign = true;
}

/* The held part's meta: encoded and parsed back; every malformed variant
 * refused. */
static void test_held_meta_parse(void **state)
{
	(void)state;
	sx_held_meta m, back;
	sx_err err = {0};
	char buf[SX_HELD_META_MAX];
	size_t len = 0;
	sample_meta(&m, 3072); /* 3 leaves: two perfect subtrees */
	memset(m.range[0], 0x11, SX_HASH_LEN);
	memset(m.range[1], 0x22, SX_HASH_LEN);
	m.depth = 2;
	memset(m.root, 0x33, SX_HASH_LEN);
	assert_int_equal(sx_held_encode(&m, buf, sizeof(buf), &len, &err), 0);
	assert_int_equal(sx_held_parse(buf, len, &back, &err), 0);
	assert_memory_equal(&m, &back, sizeof(m));
	static const struct {
		const char *from, *to;
	} bad[] = {
	    {"sxfer-held 1\n", "sxfer-held 2\n"},
	    {"size 5000\n", "size 05000\n"},
	    {"size 5000\n", "size  5000\n"},
	    {"size 5000\n", "size 5000 \n"},
	    {"leaf 1024\n", "leaf 0\n"},
	    {"held 3072\n", "held 3000\n"}, /* not whole leaves */
	    {"held 3072\n", "held 6144\n"}, /* beyond the size */
	    {"held 3072\n", "held 2048\n"}, /* one subtree, two ranges */
	    {"fingerprint cccc", "fingerprint CCCC"},
	    {"name 6269672e62696e\n", "name 2e2e\n"},	/* ".." */
	    {"name 6269672e62696e\n", "name 612f62\n"}, /* "a/b" */
	    {"mode 644\n", "mode 99\n"},
	    {"signed 1\n", "signed 2\n"},
	    {"mtime -5 7\n", "mtime -5 1000000000\n"},
	    {"end\n", "end\nmore\n"},
	    {"end\n", "end"},
	    {"kept 1700000000\n", ""},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char t[SX_HELD_META_MAX + 64];
		const char *at = strstr(buf, bad[i].from);
		assert_non_null(at);
		int n = snprintf(t, sizeof(t), "%.*s%s%s", (int)(at - buf), buf, bad[i].to,
				 at + strlen(bad[i].from));
		if (sx_held_parse(t, (size_t)n, &back, &err) == 0)
			fail_msg("accepted a meta with '%s' for '%s'", bad[i].to, bad[i].from);
		assert_int_equal(err.cls, SX_E_INTEGRITY);
	}
	assert_int_equal(sx_held_parse(buf, len - 1, &back, &err), -1);
	assert_int_equal(sx_held_parse("", 0, &back, &err), -1);
	char withnul[SX_HELD_META_MAX];
	memcpy(withnul, buf, len);
	withnul[5] = '\0';
	assert_int_equal(sx_held_parse(withnul, len, &back, &err), -1);
	/* held names: recognised as the receiver's, refused as a sent name */
	char name[SX_HELD_NAME_MAX];
	assert_int_equal(sx_held_name("big.bin", SX_HELD_DATA, name, sizeof(name), &err), 0);
	assert_true(sx_store_temp_name(name, NULL));
	assert_int_equal(sx_held_name("big.bin", SX_HELD_META, name, sizeof(name), &err), 0);
	assert_true(sx_store_temp_name(name, NULL));
}

/* A killed server's temporary with its .sxmeta becomes a held part at the
 * next start; an expired held part goes. */
static void test_recover_held(void **state)
{
	(void)state;
	sx_store st;
	sx_store_file f;
	sx_err err = {0};
	sx_held_meta m;
	char out[600], p[1200];
	snprintf(out, sizeof(out), "%s/out-held", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"big.bin", 7, &f, &err), 0);
	sample_meta(&m, 0);
	assert_int_equal(sx_store_temp_meta(&f, &m, &err), 0);
	uint8_t data[3500];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(write(f.fd, data, sizeof(data)), (ssize_t)sizeof(data));
	/* killed: nothing removed */
	f.tmp[0] = f.meta[0] = '\0';
	sx_store_end(&f);
	/* an old held part of another name */
	sx_held_meta old;
	sample_meta(&old, 1024);
	snprintf(old.name, sizeof(old.name), "old.bin");
	old.depth = 1;
	old.kept = 1000;
	char meta[SX_HELD_NAME_MAX], hdata[SX_HELD_NAME_MAX];
	int cam = open(out, O_RDONLY | O_DIRECTORY);
	assert_true(cam >= 0);
	int d = openat(cam, "cam", O_RDONLY | O_DIRECTORY);
	assert_true(d >= 0);
	assert_int_equal(sx_held_name("old.bin", SX_HELD_META, meta, sizeof(meta), &err), 0);
	assert_int_equal(sx_held_name("old.bin", SX_HELD_DATA, hdata, sizeof(hdata), &err), 0);
	assert_int_equal(sx_held_write(d, meta, &old, true, &err), 0);
	int hf = openat(d, hdata, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(hf, data, 1024), 1024);
	close(hf);
	sx_store_close(&st);
	sx_store_recovery rec;
	assert_int_equal(sx_store_recover_ttl(cam, 3600, false, &rec, &err), 0);
	assert_int_equal(rec.held, 1);
	assert_int_equal(rec.expired, 1);
	assert_int_equal(rec.removed, 0);
	assert_true(faccessat(d, meta, F_OK, 0) < 0 && faccessat(d, hdata, F_OK, 0) < 0);
	/* the held part: 3 whole leaves of 1024, their root and range */
	assert_int_equal(sx_held_name("big.bin", SX_HELD_META, meta, sizeof(meta), &err), 0);
	assert_int_equal(sx_held_read(d, meta, &m, &err), 0);
	assert_int_equal(m.held, 3072);
	assert_int_equal(m.depth, 2);
	sx_filehash h;
	uint8_t root[SX_HASH_LEN];
	uint64_t leaves, bytes;
	assert_int_equal(sx_filehash_init(&h, 1024, &err), 0);
	assert_int_equal(sx_filehash_update(&h, data, 3072, &err), 0);
	assert_int_equal(sx_filehash_final(&h, root, &leaves, &bytes, &err), 0);
	sx_filehash_free(&h);
	assert_memory_equal(m.root, root, SX_HASH_LEN);
	assert_int_equal(sx_held_name("big.bin", SX_HELD_DATA, hdata, sizeof(hdata), &err), 0);
	struct stat sb;
	assert_int_equal(fstatat(d, hdata, &sb, 0), 0);
	assert_int_equal(sb.st_size, 3072);
	snprintf(p, sizeof(p), "out-held/cam/big.bin");
	assert_false(exists(p));
	/* nothing else is left: no temporary, no .sxmeta */
	DIR *dd = opendir(out);
	assert_non_null(dd);
	closedir(dd);
	int n = 0;
	DIR *c2 = fdopendir(dup(d));
	for (struct dirent *e; (e = readdir(c2)) != NULL;)
		n += e->d_name[0] != '.' ||
		     (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0);
	closedir(c2);
	assert_int_equal(n, 2);
	/* a second start keeps it */
	assert_int_equal(sx_store_recover_ttl(cam, 3600, false, &rec, &err), 0);
	assert_int_equal(rec.held + rec.expired + rec.removed, 0);
	assert_int_equal(fstatat(d, hdata, &sb, 0), 0);
	close(d);
	close(cam);
}

/* Temporary names: one number drawn per store and counted, so hundreds of
 * files get distinct names without a draw each; a name taken already
 * (O_EXCL) is skipped, for the file and for its companion. */
static void test_store_temp_unique(void **state)
{
	(void)state;
	enum { N = 600 };
	sx_store st;
	sx_err err = {0};
	char out[600];
	static char seen[N][300];
	snprintf(out, sizeof(out), "%s/out-uniq", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	for (int i = 0; i < N; i++) {
		sx_store_file f;
		char rel[32];
		snprintf(rel, sizeof(rel), "d%d/same.bin", i % 3);
		assert_int_equal(sx_store_begin(&st, (const uint8_t *)rel, strlen(rel), &f, &err),
				 0);
		assert_true(sx_store_temp_name(f.tmp, NULL));
		for (int k = 0; k < i; k++)
			assert_string_not_equal(seen[k], f.tmp);
		snprintf(seen[i], sizeof(seen[i]), "%s", f.tmp);
		sx_store_end(&f);
	}
	/* The next two numbers taken by files put there by someone else. */
	char p[900];
	for (uint64_t k = 0; k < 2; k++) {
		snprintf(p, sizeof(p), "%s/cam/.x.bin.%012llx.sxpart", out,
			 (unsigned long long)((st.tmp_next + k) & 0xffffffffffffull));
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	sx_store_file f;
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"x.bin", 5, &f, &err), 0);
	snprintf(p, sizeof(p), "out-uniq/cam/%s", f.tmp);
	assert_true(exists(p));
	assert_int_equal(write(f.fd, "abc", 3), 3);
	/* the companion skips the names of the next number too */
	snprintf(p, sizeof(p), "%s/cam/.x.bin.sxsig.%012llx.sxpart", out,
		 (unsigned long long)(st.tmp_next & 0xffffffffffffull));
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sx_store_aux_write(&f, ".sxsig", "sig", 3, &err), 0);
	assert_int_equal(sx_store_commit(&st, &f, &err), 0);
	sx_store_end(&f);
	assert_true(exists("out-uniq/cam/x.bin"));
	assert_true(exists("out-uniq/cam/x.bin.sxsig"));
	sx_store_close(&st);
}

/* Folder generations: files of one folder share theirs (one flush of the
 * folder covers their renames), other folders have others; a lookup lends
 * the store's own descriptor. */
static void test_store_dir_gen(void **state)
{
	(void)state;
	sx_store st;
	sx_store_file a, b, c, r;
	sx_err err = {0};
	char out[600], name[256];
	snprintf(out, sizeof(out), "%s/out-gen", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"p/a", 3, &a, &err), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"p/b", 3, &b, &err), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"q/c", 3, &c, &err), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"r", 1, &r, &err), 0);
	assert_true(a.dir_gen != 0 && a.dir_gen == b.dir_gen);
	assert_true(c.dir_gen != 0 && c.dir_gen != a.dir_gen);
	assert_true(r.dir_gen != 0 && r.dir_gen != a.dir_gen && r.dir_gen != c.dir_gen);
	/* parked and taken up again through another folder: the same
	 * folder, a new generation, and never one of another folder */
	assert_int_equal(sx_store_park(&a, (const uint8_t *)"p/a", 3, &err), 0);
	assert_int_equal(sx_store_unpark(&a, false, &err), 0);
	assert_true(a.dir_gen != 0 && a.dir_gen != c.dir_gen);
	int fd = sx_store_lookup(&st, (const uint8_t *)"q/x", 3, name, &err);
	assert_true(fd >= 0);
	assert_string_equal(name, "x");
	assert_int_equal(fd, sx_store_lookup(&st, (const uint8_t *)"q/y", 3, name, &err));
	assert_int_equal(sx_store_lookup(&st, (const uint8_t *)"none/x", 6, name, &err), -1);
	assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC); /* still open */
	sx_store_end(&a);
	sx_store_end(&b);
	sx_store_end(&c);
	sx_store_end(&r);
	sx_store_close(&st);
}

/* A reading of the free space serves the next files, but a file is refused
 * only on a fresh one: a huge file after small ones still is. */
static void test_store_space_reuse(void **state)
{
	(void)state;
	sx_store st;
	sx_store_file f;
	sx_err err = {0};
	char out[600];
	snprintf(out, sizeof(out), "%s/out-space", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	assert_int_equal(sx_store_begin(&st, (const uint8_t *)"s/a", 3, &f, &err), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(sx_store_space(&f, 4096, &err), 0);
	assert_int_equal(sx_store_space(&f, UINT64_MAX / 4, &err), -1);
	assert_non_null(strstr(err.msg, "does not fit"));
	sx_err_clear(&err);
	assert_int_equal(sx_store_space(&f, 4096, &err), 0);
	sx_store_end(&f);
	sx_store_close(&st);
}

/* The index of held parts: a walk of OUT that finds none lets its stores
 * skip the looking; a part made since, or one found by the next walk,
 * makes every store look again. A folder never walked is always looked
 * in. */
static void test_held_index(void **state)
{
	(void)state;
	sx_store st, other;
	sx_err err = {0};
	sx_store_recovery rec;
	char out[600], out2[600];
	snprintf(out, sizeof(out), "%s/out-index", dir);
	snprintf(out2, sizeof(out2), "%s/out-index2", dir);
	assert_int_equal(sx_store_open(&st, out, "cam", false, &err), 0);
	assert_int_equal(sx_store_open(&other, out2, "cam", false, &err), 0);
	assert_true(sx_store_may_hold(&st));
	int ofd = open(out, O_RDONLY | O_DIRECTORY);
	assert_true(ofd >= 0);
	assert_int_equal(sx_store_recover_ttl(ofd, 0, false, &rec, &err), 0);
	assert_false(sx_store_may_hold(&st));
	assert_true(sx_store_may_hold(&other));
	sx_held_index_mark(); /* a part kept somewhere */
	assert_true(sx_store_may_hold(&st));
	assert_int_equal(sx_store_recover_ttl(ofd, 0, true, &rec, &err), 0); /* the sweep */
	assert_false(sx_store_may_hold(&st));
	/* a part in OUT: written (which marks), then seen by the next walks */
	sx_held_meta m;
	char meta[SX_HELD_NAME_MAX], data[SX_HELD_NAME_MAX];
	sample_meta(&m, 1024);
	snprintf(m.name, sizeof(m.name), "p.bin");
	m.depth = 1;
	m.kept = (int64_t)time(NULL);
	assert_int_equal(sx_held_name("p.bin", SX_HELD_META, meta, sizeof(meta), &err), 0);
	assert_int_equal(sx_held_name("p.bin", SX_HELD_DATA, data, sizeof(data), &err), 0);
	int d = openat(ofd, "cam", O_RDONLY | O_DIRECTORY);
	assert_true(d >= 0);
	assert_int_equal(sx_held_write(d, meta, &m, true, &err), 0);
	assert_true(sx_store_may_hold(&st));
	int hf = openat(d, data, O_WRONLY | O_CREAT, 0600);
	uint8_t bytes[1024] = {0};
	assert_int_equal(write(hf, bytes, sizeof(bytes)), (ssize_t)sizeof(bytes));
	close(hf);
	assert_int_equal(sx_store_recover_ttl(ofd, 0, true, &rec, &err), 0);
	assert_true(sx_store_may_hold(&st));
	assert_int_equal(sx_store_recover_ttl(ofd, 0, false, &rec, &err), 0);
	assert_true(sx_store_may_hold(&st));
	/* taken away (resumed): the next walk finds none */
	assert_true(sx_held_remove(d, "p.bin"));
	assert_int_equal(sx_store_recover_ttl(ofd, 0, true, &rec, &err), 0);
	assert_false(sx_store_may_hold(&st));
	close(d);
	close(ofd);
	sx_store_close(&st);
	sx_store_close(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_store_commit),
	    cmocka_unit_test(test_store_abort_removes_temporary),
	    cmocka_unit_test(test_store_refuses_escape),
	    cmocka_unit_test(test_store_overwrite),
	    cmocka_unit_test(test_store_refused_commit_leaves_no_companion),
	    cmocka_unit_test(test_store_temp_names),
	    cmocka_unit_test(test_store_ckpt_and_recover),
	    cmocka_unit_test(test_held_meta_parse),
	    cmocka_unit_test(test_recover_held),
	    cmocka_unit_test(test_recover_names_companions),
	    cmocka_unit_test(test_store_temp_unique),
	    cmocka_unit_test(test_store_dir_gen),
	    cmocka_unit_test(test_store_space_reuse),
	    cmocka_unit_test(test_held_index),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
