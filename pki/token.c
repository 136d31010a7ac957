/* One-time enrollment tokens (docs/PKI.md "Tokens"): the text form
 * ("sxt1." + base64url of a binary payload) and the CA folder's record of
 * the tokens it made (DIR/tokens.txt).
 *
 * A token is a bearer credential for one enrollment: it is accepted only
 * when its SHA-256 is recorded, unused and not expired in tokens.txt. The
 * text itself is never stored, so reading the CA folder gives no usable
 * token; changing a character of the text changes its hash, which makes it
 * an unknown token. Nothing in a token lets anyone make another one. */
#include "pki/ca_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/sx_util.h"

#define TOKEN_PREFIX	   "sxt1."
#define TOKEN_VERSION	   1
#define TOKEN_NONCE_LEN	   32
#define TOKEN_FLAG_REPLACE 0x01u
#define TOKEN_PAYLOAD_MAX  1500 /* its base64url text stays under SX_TOKEN_TEXT_MAX */
#define TOKENS_FILE_MAX	   (64 * 1024 * 1024)
#define TOKENS_LINE_MAX	   8192
#define TOKENS_MAX	   (1u << 20)
#define TOKENS_PRUNE_AFTER 86400 /* records expired longer than a day are dropped */
#define TOKENS_HEADER                                                                              \
	"# sxfer CA tokens v1: status sha256 expires usedAt serial role replace sans name\n"

/* ---- the payload: a bounded writer and reader ---------------------------- */

typedef struct tok_wr {
	uint8_t *p;
	size_t cap, len;
	bool overflow;
} tok_wr;

static void put_bytes(tok_wr *w, const void *p, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->len, p, n);
	w->len += n;
}

static void put_u8(tok_wr *w, unsigned v)
{
	uint8_t b = (uint8_t)v;
	put_bytes(w, &b, 1);
}

static void put_u64(tok_wr *w, uint64_t v)
{
	uint8_t b[8];
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
	put_bytes(w, b, sizeof(b));
}

/* A field of at most 255 bytes, prefixed by its length. */
static void put_block8(tok_wr *w, const void *p, size_t n)
{
	if (n > 255) {
		w->overflow = true;
		return;
	}
	put_u8(w, (unsigned)n);
	put_bytes(w, p, n);
}

typedef struct tok_cur {
	const uint8_t *p;
	size_t len, pos;
} tok_cur;

static int cur_bytes(tok_cur *c, size_t n, const uint8_t **out)
{
	if (n > c->len - c->pos)
		return -1;
	*out = c->p + c->pos;
	c->pos += n;
	return 0;
}

static int cur_u8(tok_cur *c, uint8_t *v)
{
	const uint8_t *b;
	if (cur_bytes(c, 1, &b) < 0)
		return -1;
	*v = b[0];
	return 0;
}

static int cur_u64(tok_cur *c, uint64_t *v)
{
	const uint8_t *b;
	if (cur_bytes(c, 8, &b) < 0)
		return -1;
	*v = 0;
	for (int i = 0; i < 8; i++)
		*v = (*v << 8) | b[i];
	return 0;
}

/* A length-prefixed field of lo..hi bytes, copied as a string into buf. */
static int cur_str8(tok_cur *c, size_t lo, size_t hi, char *buf, size_t cap)
{
	uint8_t n;
	const uint8_t *b;
	if (cur_u8(c, &n) < 0 || n < lo || n > hi || n >= cap || cur_bytes(c, n, &b) < 0 ||
	    memchr(b, '\0', n) != NULL)
		return -1;
	memcpy(buf, b, n);
	buf[n] = '\0';
	return 0;
}

/* An IP literal as 4 or 16 bytes (the parser of certificate SANs); 0 when
 * it is not one. */
static int ip_bytes(const char *text, uint8_t out[16])
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(text);
	int n = ip ? ASN1_STRING_length(ip) : 0;
	if (n == 4 || n == 16)
		memcpy(out, ASN1_STRING_get0_data(ip), (size_t)n);
	else
		n = 0;
	ASN1_OCTET_STRING_free(ip);
	ERR_clear_error();
	return n;
}

static int encode_payload(const sx_claims *c, uint8_t *out, size_t cap, size_t *len, sx_err *err)
{
	tok_wr w = {out, cap, 0, false};
	uint8_t nonce[TOKEN_NONCE_LEN], ip[16];
	if (RAND_bytes(nonce, sizeof(nonce)) != 1)
		return sx_fail_ssl(err, SX_E_OTHER, "random token");
	put_u8(&w, TOKEN_VERSION);
	put_bytes(&w, nonce, sizeof(nonce));
	put_u64(&w, (uint64_t)c->expires);
	put_u8(&w, (unsigned)c->profile);
	put_u8(&w, c->replace ? TOKEN_FLAG_REPLACE : 0);
	put_block8(&w, c->name, strlen(c->name));
	put_u8(&w, (unsigned)c->ndns);
	for (size_t i = 0; i < c->ndns; i++)
		put_block8(&w, c->dns[i], strlen(c->dns[i]));
	put_u8(&w, (unsigned)c->nips);
	for (size_t i = 0; i < c->nips; i++) {
		int n = ip_bytes(c->ips[i], ip);
		if (n != 4 && n != 16)
			return sx_fail(err, SX_E_USAGE, "'%s' is not an IP address", c->ips[i]);
		put_block8(&w, ip, (size_t)n);
	}
	put_bytes(&w, c->ca_fp, sizeof(c->ca_fp));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	if (w.overflow)
		return sx_fail(err, SX_E_USAGE,
			       "too many or too long names for one token (at most %d bytes)",
			       TOKEN_PAYLOAD_MAX);
	*len = w.len;
	return 0;
}

static int decode_sans(tok_cur *cur, sx_claims *c)
{
	uint8_t n, iplen;
	const uint8_t *ip;
	sx_err ignored = {0};
	if (cur_u8(cur, &n) < 0 || n > SX_TOKEN_SAN_MAX)
		return -1;
	for (c->ndns = 0; c->ndns < n; c->ndns++)
		if (cur_str8(cur, 1, 253, c->dns[c->ndns], sizeof(c->dns[0])) < 0 ||
		    sx_dns_check(c->dns[c->ndns], &ignored) < 0)
			return -1;
	if (cur_u8(cur, &n) < 0 || n > SX_TOKEN_SAN_MAX)
		return -1;
	for (c->nips = 0; c->nips < n; c->nips++) {
		if (cur_u8(cur, &iplen) < 0 || (iplen != 4 && iplen != 16) ||
		    cur_bytes(cur, iplen, &ip) < 0 ||
		    inet_ntop(iplen == 4 ? AF_INET : AF_INET6, ip, c->ips[c->nips],
			      sizeof(c->ips[0])) == NULL)
			return -1;
	}
	return 0;
}

/* Strict: an unknown version or flag, a bad length or trailing bytes. */
static int decode_payload(const uint8_t *p, size_t len, sx_claims *c)
{
	tok_cur cur = {p, len, 0};
	uint8_t version, role, flags;
	uint64_t expires;
	const uint8_t *b;
	sx_err ignored = {0};
	memset(c, 0, sizeof(*c));
	if (cur_u8(&cur, &version) < 0 || version != TOKEN_VERSION ||
	    cur_bytes(&cur, TOKEN_NONCE_LEN, &b) < 0 || cur_u64(&cur, &expires) < 0 ||
	    expires > INT64_MAX || cur_u8(&cur, &role) < 0 || role < SX_PROFILE_SERVER ||
	    role > SX_PROFILE_BOTH || cur_u8(&cur, &flags) < 0 || (flags & ~TOKEN_FLAG_REPLACE))
		return -1;
	if (cur_str8(&cur, 1, SX_CN_MAX, c->name, sizeof(c->name)) < 0 ||
	    sx_name_check(c->name, &ignored) < 0 || decode_sans(&cur, c) < 0 ||
	    cur_bytes(&cur, SX_CERT_FP_LEN, &b) < 0 || cur.pos != cur.len)
		return -1;
	memcpy(c->ca_fp, b, SX_CERT_FP_LEN);
	c->expires = (time_t)expires;
	c->profile = (sx_profile)role;
	c->has_profile = true;
	c->replace = (flags & TOKEN_FLAG_REPLACE) != 0;
	return 0;
}

/* ---- the text: base64url without padding ------------------------------- */

static int b64url_encode(const uint8_t *p, size_t n, char *out, size_t cap)
{
	int len;
	if (n > TOKEN_PAYLOAD_MAX || cap < 4 * ((n + 2) / 3) + 1)
		return -1;
	len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (int i = 0; i < len; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return len;
}

/* Only the alphabet, no padding, and the canonical form (what encoding the
 * bytes gives back), so one payload has one text. */
static int b64url_decode(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(s), pad;
	char std[2 * TOKEN_PAYLOAD_MAX + 8], again[2 * TOKEN_PAYLOAD_MAX + 8];
	int got;
	if (n == 0 || n % 4 == 1 || n + 3 > sizeof(std) - 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
		if (!ok)
			return -1;
		std[i] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
	}
	pad = (4 - n % 4) % 4;
	memset(std + n, '=', pad);
	std[n + pad] = '\0';
	if ((n + pad) / 4 * 3 > cap)
		return -1;
	got = EVP_DecodeBlock(out, (const unsigned char *)std, (int)(n + pad));
	if (got < 0 || (size_t)got < pad)
		return -1;
	*len = (size_t)got - pad;
	if (b64url_encode(out, *len, again, sizeof(again)) < 0 || strcmp(again, s) != 0)
		return -1;
	return 0;
}

int sx_token_parse(const char *text, sx_claims *c, sx_err *err)
{
	uint8_t payload[TOKEN_PAYLOAD_MAX + 4];
	size_t len = 0, tlen = text ? strnlen(text, SX_TOKEN_TEXT_MAX) : 0;
	int rc = -1;
	memset(c, 0, sizeof(*c));
	SX_ENSURE(text != NULL, err, SX_E_USAGE, "no token");
	SX_ENSURE(tlen < SX_TOKEN_TEXT_MAX, err, SX_E_USAGE, "not a token (too long)");
	SX_ENSURE(strncmp(text, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) == 0, err, SX_E_USAGE,
		  "not a token (a token starts with '%s')", TOKEN_PREFIX);
	SX_ENSURE(strpbrk(text, " \t\r\n") == NULL, err, SX_E_USAGE,
		  "not a token (it has a space or a line end; pass it exactly as 'sxfer ca "
		  "token' printed it)");
	SX_ENSURE(b64url_decode(text + strlen(TOKEN_PREFIX), payload, sizeof(payload), &len) == 0,
		  err, SX_E_USAGE, "not a token (damaged or truncated text)");
	SX_ENSURE(decode_payload(payload, len, c) == 0, err, SX_E_USAGE,
		  "not a token (damaged, truncated or of an unknown version)");
	rc = 0;
out:
	OPENSSL_cleanse(payload, sizeof(payload));
	if (rc < 0)
		memset(c, 0, sizeof(*c));
	return rc;
}

int sx_token_hash(const char *text, char hash[SX_TOKEN_HASH_HEX], sx_err *err)
{
	uint8_t md[32];
	unsigned int n = 0;
	if (EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL) != 1 || n != sizeof(md))
		return sx_fail_ssl(err, SX_E_OTHER, "token hash");
	sx_hex(md, sizeof(md), hash);
	return 0;
}

/* ---- DIR/tokens.txt ------------------------------------------------------ */

void sx_token_db_free(sx_token_db *db)
{
	for (size_t i = 0; i < db->n; i++)
		free(db->r[i].sans);
	free(db->r);
	memset(db, 0, sizeof(*db));
}

sx_token_rec *sx_token_db_find(const sx_token_db *db, const char *hash)
{
	for (size_t i = 0; i < db->n; i++)
		if (strcmp(db->r[i].hash, hash) == 0)
			return &db->r[i];
	return NULL;
}

static bool all_of(const char *s, const char *set)
{
	return s[0] != '\0' && s[strspn(s, set)] == '\0';
}

/* status hash expires usedAt serial role replace sans name, tab-separated;
 * the fields point into line, which is modified. */
static int parse_rec(char *line, sx_token_rec *r)
{
	char *f[9], *p = line;
	uint64_t v;
	for (int i = 0; i < 9; i++) {
		f[i] = p;
		p = i < 8 ? strchr(p, '\t') : NULL;
		if (i < 8 && p == NULL)
			return -1;
		if (p != NULL)
			*p++ = '\0';
	}
	memset(r, 0, sizeof(*r));
	if (strcmp(f[0], "used") != 0 && strcmp(f[0], "unused") != 0)
		return -1;
	r->used = f[0][0] == 'u' && f[0][1] == 's';
	if (strlen(f[1]) != SX_TOKEN_HASH_HEX - 1 || !all_of(f[1], "0123456789abcdef"))
		return -1;
	memcpy(r->hash, f[1], SX_TOKEN_HASH_HEX);
	if (sx_parse_u64(f[2], &v) < 0 || v > INT64_MAX)
		return -1;
	r->expires = (time_t)v;
	if (sx_parse_u64(f[3], &v) < 0 || v > INT64_MAX || (v != 0) != r->used)
		return -1;
	r->used_at = (time_t)v;
	if (strcmp(f[4], "-") != 0 &&
	    (sx_serial_normalize(f[4], r->serial) < 0 || strcmp(f[4], r->serial) != 0 || !r->used))
		return -1;
	if (sx_profile_parse(f[5], &r->profile) < 0 ||
	    (strcmp(f[6], "replace") != 0 && strcmp(f[6], "-") != 0))
		return -1;
	r->replace = f[6][0] == 'r';
	if (strcmp(f[7], "-") != 0 &&
	    !all_of(f[7], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.:,_*-"))
		return -1;
	sx_err ignored = {0};
	if (sx_name_check(f[8], &ignored) < 0 || strlen(f[8]) > SX_CN_MAX)
		return -1;
	memcpy(r->name, f[8], strlen(f[8]) + 1);
	r->sans = strdup(strcmp(f[7], "-") == 0 ? "" : f[7]);
	return r->sans == NULL ? -1 : 0;
}

static int token_db_parse(char *text, size_t len, sx_token_db *db, sx_err *err)
{
	char *p = text, *end = text + len;
	size_t lineno = 0;
	sx_token_rec r;
	SX_ENSURE(memchr(text, '\0', len) == NULL, err, SX_E_INTEGRITY, "a NUL byte in the file");
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		lineno++;
		SX_ENSURE(le - p <= TOKENS_LINE_MAX, err, SX_E_INTEGRITY, "line %zu is too long",
			  lineno);
		*le = '\0';
		if (le > p && p[0] != '#') {
			SX_ENSURE(parse_rec(p, &r) == 0, err, SX_E_INTEGRITY,
				  "line %zu is malformed", lineno);
			if (sx_token_db_find(db, r.hash) != NULL) {
				free(r.sans);
				sx_fail(err, SX_E_INTEGRITY, "line %zu repeats a token", lineno);
				goto out;
			}
			if (sx_grow(&db->r, &db->cap, db->n + 1, sizeof(*db->r), TOKENS_MAX,
				    "tokens in the CA folder", err) < 0) {
				free(r.sans);
				goto out;
			}
			db->r[db->n++] = r;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
out:
	sx_token_db_free(db);
	return -1;
}

int sx_token_db_load(const char *dir, sx_token_db *db, sx_err *err)
{
	char path[4096];
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;
	memset(db, 0, sizeof(*db));
	if (sx_ca_path(path, sizeof(path), dir, "tokens.txt", err) < 0)
		return -1;
	if (access(path, F_OK) != 0)
		return 0; /* no token made yet */
	if (sx_file_read(path, TOKENS_FILE_MAX, &data, &len, err) < 0)
		return -1;
	rc = token_db_parse((char *)data, len, db, err);
	if (rc < 0)
		sx_err_prefix(err, "%s: ", path);
	free(data);
	return rc;
}

static int format_rec(const sx_token_rec *r, char *buf, size_t cap)
{
	return snprintf(buf, cap, "%s\t%s\t%lld\t%lld\t%s\t%s\t%s\t%s\t%s\n",
			r->used ? "used" : "unused", r->hash, (long long)r->expires,
			(long long)r->used_at, r->serial[0] ? r->serial : "-",
			sx_profile_name(r->profile), r->replace ? "replace" : "-",
			r->sans && r->sans[0] ? r->sans : "-", r->name);
}

int sx_token_db_store(const char *dir, const sx_token_db *db, time_t now, sx_err *err)
{
	char path[4096], *buf = NULL;
	size_t cap, used;
	int rc = -1;
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "tokens.txt", err));
	SX_ENSURE(sx_mul_ok(db->n + 1, TOKENS_LINE_MAX + 1, &cap), err, SX_E_OTHER,
		  "too many tokens");
	buf = malloc(cap);
	SX_ENSURE(buf != NULL, err, SX_E_OTHER, "out of memory");
	used = (size_t)snprintf(buf, cap, "%s", TOKENS_HEADER);
	for (size_t i = 0; i < db->n; i++) {
		if (db->r[i].expires < now - TOKENS_PRUNE_AFTER)
			continue;
		int n = format_rec(&db->r[i], buf + used, cap - used);
		SX_ENSURE(n > 0 && (size_t)n < cap - used && n <= TOKENS_LINE_MAX, err, SX_E_OTHER,
			  "token record too long");
		used += (size_t)n;
	}
	SX_GUARD(sx_file_write_atomic(path, buf, used, 0600, err));
	rc = 0;
out:
	free(buf);
	return rc;
}

/* ---- ca token ----------------------------------------------------------- */

/* "DNS:a,IP:10.0.0.1" into a new string. */
static char *sans_text(const sx_claims *c)
{
	size_t cap = (c->ndns + c->nips) * 300 + 1, used = 0;
	char *s = malloc(cap);
	if (s == NULL)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < c->ndns; i++)
		used +=
		    (size_t)snprintf(s + used, cap - used, "%sDNS:%s", used ? "," : "", c->dns[i]);
	for (size_t i = 0; i < c->nips; i++)
		used +=
		    (size_t)snprintf(s + used, cap - used, "%sIP:%s", used ? "," : "", c->ips[i]);
	return s;
}

/* The claims a token may carry; IP literals in their canonical text. */
static int claims_check(sx_claims *c, time_t now, sx_err *err)
{
	uint8_t ip[16];
	SX_GUARD(sx_name_check(c->name, err));
	SX_ENSURE(c->profile >= SX_PROFILE_SERVER && c->profile <= SX_PROFILE_BOTH, err, SX_E_USAGE,
		  "a token is for a server, a client or both");
	SX_ENSURE(c->ndns <= SX_TOKEN_SAN_MAX && c->nips <= SX_TOKEN_SAN_MAX, err, SX_E_USAGE,
		  "a token carries at most %d DNS names and %d IP addresses", SX_TOKEN_SAN_MAX,
		  SX_TOKEN_SAN_MAX);
	for (size_t i = 0; i < c->ndns; i++)
		SX_GUARD(sx_dns_check(c->dns[i], err));
	for (size_t i = 0; i < c->nips; i++) {
		int n = ip_bytes(c->ips[i], ip);
		SX_ENSURE(n == 4 || n == 16, err, SX_E_USAGE, "'%s' is not an IP address",
			  c->ips[i]);
		SX_ENSURE(inet_ntop(n == 4 ? AF_INET : AF_INET6, ip, c->ips[i], sizeof(c->ips[0])),
			  err, SX_E_USAGE, "'%s' is not an IP address", c->ips[i]);
	}
	SX_ENSURE(c->expires > now, err, SX_E_USAGE, "the token's expiry is not in the future");
	SX_ENSURE(c->expires - now <= SX_TOKEN_TTL_MAX, err, SX_E_USAGE,
		  "a token lives at most %d days", SX_TOKEN_TTL_MAX / 86400);
	return 0;
out:
	ERR_clear_error();
	return -1;
}

static int root_fp(const char *dir, uint8_t fp[SX_CERT_FP_LEN], sx_err *err)
{
	char path[4096];
	STACK_OF(X509) *certs = NULL;
	int rc = -1;
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "index.txt", err));
	SX_ENSURE(access(path, F_OK) == 0, err, SX_E_IO,
		  "%s: not a CA folder made by 'sxfer ca init' (no %s)", dir, path);
	SX_GUARD(sx_ca_path(path, sizeof(path), dir, "ca.pem", err));
	SX_GUARD(sx_certs_load(path, &certs, err));
	SX_ENSURE(X509_get_extension_flags(sk_X509_value(certs, 0)) & EXFLAG_CA, err, SX_E_AUTH,
		  "%s: not a CA certificate", path);
	SX_GUARD(sx_cert_fp(sk_X509_value(certs, 0), fp, err));
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

/* No CA key is needed: a token is only a record in the CA folder, which
 * its permissions (0700) protect like the index. */
int sx_ca_token_new(const char *dir, sx_claims *c, char *text, size_t cap, sx_err *err)
{
	int rc = -1, lock_fd = -1, n;
	uint8_t payload[TOKEN_PAYLOAD_MAX];
	char tok[SX_TOKEN_TEXT_MAX];
	size_t plen = 0;
	time_t now = time(NULL);
	sx_token_db db = {0};
	sx_token_rec r = {0};

	SX_GUARD(claims_check(c, now, err));
	SX_GUARD(root_fp(dir, c->ca_fp, err));
	SX_GUARD(encode_payload(c, payload, sizeof(payload), &plen, err));
	memcpy(tok, TOKEN_PREFIX, strlen(TOKEN_PREFIX));
	n = b64url_encode(payload, plen, tok + strlen(TOKEN_PREFIX),
			  sizeof(tok) - strlen(TOKEN_PREFIX));
	SX_ENSURE(n > 0 && strlen(tok) + 1 <= cap, err, SX_E_OTHER, "token too long");
	SX_GUARD(sx_token_hash(tok, r.hash, err));
	r.expires = c->expires;
	r.profile = c->profile;
	r.replace = c->replace;
	memcpy(r.name, c->name, strlen(c->name) + 1);
	r.sans = sans_text(c);
	SX_ENSURE(r.sans != NULL, err, SX_E_OTHER, "out of memory");

	SX_GUARD(sx_ca_lock_take(dir, &lock_fd, err));
	SX_GUARD(sx_token_db_load(dir, &db, err));
	SX_GUARD(sx_grow(&db.r, &db.cap, db.n + 1, sizeof(*db.r), TOKENS_MAX,
			 "tokens in the CA folder", err));
	db.r[db.n++] = r;
	r.sans = NULL; /* db owns it */
	SX_GUARD(sx_token_db_store(dir, &db, now, err));
	memcpy(text, tok, strlen(tok) + 1);
	rc = 0;
out:
	if (lock_fd >= 0)
		close(lock_fd);
	sx_token_db_free(&db);
	free(r.sans);
	OPENSSL_cleanse(payload, sizeof(payload));
	OPENSSL_cleanse(tok, sizeof(tok));
	return rc;
}
