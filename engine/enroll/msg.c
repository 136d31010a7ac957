/* The enrollment messages, encoder and decoder side by side
 * (docs/PROTOCOL.md "Enrollment"). Pure. */
#include "engine/enroll/sx_enroll.h"

#include <stdio.h>
#include <string.h>

#include "engine/wire/sx_wire.h"

_Static_assert(SX_ENROLL_REASON_MAX == SX_REASON_MAX, "an ERROR's reason as the transfer's");

const char *sx_enroll_msg_name(uint8_t type)
{
	switch (type) {
	case SX_EMSG_ENROLL: return "ENROLL";
	case SX_EMSG_RENEW: return "RENEW";
	case SX_EMSG_CRL_REQ: return "CRL request";
	case SX_EMSG_ISSUED: return "ISSUED";
	case SX_EMSG_CRL: return "CRL";
	case SX_EMSG_ERROR: return "ERROR";
	default: return "unknown";
	}
}

static bool token_ok(const uint8_t *p, size_t n)
{
	if (n == 0 || n > SX_ENROLL_TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return false;
	return true;
}

static bool within(size_t n, size_t lo, size_t hi)
{
	return n >= lo && n <= hi;
}

/* The bounds of each field of m->type: NULL when they hold, else what is
 * wrong (the one check of both the encoder and the decoder). */
static const char *msg_problem(const sx_enroll_msg *m)
{
	switch (m->type) {
	case SX_EMSG_ENROLL:
		if (!token_ok(m->token, m->token_len))
			return "the token is not 1 to 2048 visible ASCII characters";
		/* fall through */
	case SX_EMSG_RENEW:
		return within(m->csr_len, 1, SX_ENROLL_CSR_MAX) ? NULL
								: "a CSR of 0 or over 16384 bytes";
	case SX_EMSG_CRL_REQ: return NULL;
	case SX_EMSG_ISSUED:
		if (!within(m->leaf_len, 1, SX_ENROLL_CERT_MAX) ||
		    !within(m->root_len, 1, SX_ENROLL_CERT_MAX))
			return "a certificate of 0 or over 16384 bytes";
		return m->crl_len <= SX_ENROLL_CRL_MAX ? NULL : "a CRL over 4 MiB";
	case SX_EMSG_CRL:
		return within(m->crl_len, 1, SX_ENROLL_CRL_MAX) ? NULL : "a CRL of 0 or over 4 MiB";
	case SX_EMSG_ERROR:
		if (m->err_class < SX_E_OTHER || m->err_class > SX_E_NET)
			return "an error class outside 1..6";
		return m->reason_len <= SX_ENROLL_REASON_MAX ? NULL : "a reason over 400 bytes";
	default: return "unknown type";
	}
}

static void put_block32(sx_wbuf *w, const uint8_t *p, size_t n)
{
	sx_put_u32(w, (uint32_t)n);
	sx_put_bytes(w, p, n);
}

static void msg_put(const sx_enroll_msg *m, sx_wbuf *w)
{
	sx_put_u8(w, m->type);
	switch (m->type) {
	case SX_EMSG_ENROLL:
		sx_put_block16(w, m->token, m->token_len);
		sx_put_block16(w, m->csr, m->csr_len);
		break;
	case SX_EMSG_RENEW: sx_put_block16(w, m->csr, m->csr_len); break;
	case SX_EMSG_ISSUED:
		sx_put_block16(w, m->leaf, m->leaf_len);
		sx_put_block16(w, m->root, m->root_len);
		put_block32(w, m->crl, m->crl_len);
		break;
	case SX_EMSG_CRL: put_block32(w, m->crl, m->crl_len); break;
	case SX_EMSG_ERROR:
		sx_put_u8(w, m->err_class);
		sx_put_block16(w, m->reason, m->reason_len);
		break;
	default: break; /* CRL_REQ: the type alone */
	}
}

size_t sx_enroll_msg_encode(const sx_enroll_msg *m, uint8_t *out, size_t cap)
{
	sx_wbuf w = sx_wbuf_make(out, cap);
	if (msg_problem(m) != NULL)
		return 0;
	msg_put(m, &w);
	return w.overflow ? 0 : w.len;
}

/* A block prefixed by a 32-bit length, at most max bytes (checked before
 * the bytes are looked at). */
static int cur_block32(sx_cur *c, size_t max, const uint8_t **out, size_t *n)
{
	uint32_t len;
	if (sx_cur_u32(c, &len) < 0 || len > max || sx_cur_bytes(c, len, out) < 0)
		return -1;
	*n = len;
	return 0;
}

/* The fields of m->type; each read its own step. -1: too short. */
static int msg_fields(sx_cur *c, sx_enroll_msg *m)
{
	switch (m->type) {
	case SX_EMSG_ENROLL:
		if (sx_cur_block16(c, &m->token, &m->token_len) < 0)
			return -1;
		/* fall through */
	case SX_EMSG_RENEW: return sx_cur_block16(c, &m->csr, &m->csr_len);
	case SX_EMSG_ISSUED:
		if (sx_cur_block16(c, &m->leaf, &m->leaf_len) < 0 ||
		    sx_cur_block16(c, &m->root, &m->root_len) < 0)
			return -1;
		/* fall through */
	case SX_EMSG_CRL: return cur_block32(c, SX_ENROLL_CRL_MAX, &m->crl, &m->crl_len);
	case SX_EMSG_ERROR:
		if (sx_cur_u8(c, &m->err_class) < 0)
			return -1;
		return sx_cur_block16(c, &m->reason, &m->reason_len);
	default: return 0; /* CRL_REQ: the type alone */
	}
}

int sx_enroll_msg_decode(const uint8_t *body, size_t len, sx_enroll_msg *m, sx_err *err)
{
	sx_cur c = sx_cur_make(body, len);
	const char *name, *problem;
	memset(m, 0, sizeof(*m));
	if (sx_cur_u8(&c, &m->type) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "malformed enrollment message: empty");
	name = sx_enroll_msg_name(m->type);
	if (strcmp(name, "unknown") == 0)
		return sx_fail(err, SX_E_INTEGRITY,
			       "malformed enrollment message: unknown type 0x%02x", m->type);
	if (msg_fields(&c, m) < 0)
		return sx_fail(err, SX_E_INTEGRITY, "malformed enrollment message: %s: truncated",
			       name);
	if (sx_cur_end(&c) < 0)
		return sx_fail(err, SX_E_INTEGRITY,
			       "malformed enrollment message: %s: %zu bytes left over", name,
			       sx_cur_left(&c));
	problem = msg_problem(m);
	if (problem != NULL)
		return sx_fail(err, SX_E_INTEGRITY, "malformed enrollment message: %s: %s", name,
			       problem);
	return 0;
}

int sx_enroll_fp_parse(const char *s, uint8_t fp[SX_CERT_FP_LEN], sx_err *err)
{
	size_t n = 0;
	for (const char *p = s; *p != '\0'; p++) {
		unsigned v;
		if (*p == ':' && p != s && n % 2 == 0 && p[1] != '\0' && p[1] != ':')
			continue;
		if (*p >= '0' && *p <= '9')
			v = (unsigned)(*p - '0');
		else if ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f')
			v = (unsigned)((*p | 0x20) - 'a' + 10);
		else
			break;
		if (n >= 2 * SX_CERT_FP_LEN)
			break;
		fp[n / 2] = (uint8_t)(n % 2 == 0 ? v << 4 : (fp[n / 2] | v));
		n++;
		if (p[1] == '\0' && n == 2 * SX_CERT_FP_LEN)
			return 0;
	}
	return sx_fail(err, SX_E_USAGE,
		       "a CA fingerprint is 64 hex digits (SHA-256 of the root, as `sxfer id "
		       "show --cert ca.pem` prints it)");
}
