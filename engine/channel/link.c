#include "engine/channel/sx_link.h"

#include <string.h>

#include <openssl/crypto.h>

int sx_link_init(sx_link *l, sx_chan_ctx *ctx, sx_err *err)
{
	memset(l, 0, sizeof(*l));
	return sx_chan_new(&l->chan, ctx, err);
}

void sx_link_free(sx_link *l)
{
	if (l->chan != NULL)
		sx_chan_free(l->chan);
	l->chan = NULL;
	if (l->ready) {
		sx_rdir_free(&l->k.tx);
		sx_rdir_free(&l->k.rx);
		sk_X509_pop_free(l->k.peer_chain, X509_free);
		l->k.peer_chain = NULL;
		l->ready = false;
	}
	OPENSSL_cleanse(l->hs_in, sizeof(l->hs_in));
}

void sx_link_move(sx_link *to, sx_link *from)
{
	memset(to, 0, sizeof(*to));
	to->k = from->k;
	to->ready = from->ready;
	OPENSSL_cleanse(&from->k, sizeof(from->k));
	from->ready = false;
}

void sx_link_hs_recv_buf(sx_link *l, uint8_t **buf, size_t *len)
{
	*buf = l->hs_in + l->hs_have;
	*len = sizeof(l->hs_in) - l->hs_have;
}

int sx_link_hs_input(sx_link *l, size_t n, sx_err *err)
{
	size_t used = 0;
	l->hs_have += n;
	if (sx_chan_input(l->chan, l->hs_in, l->hs_have, &used, err) < 0)
		return -1;
	memmove(l->hs_in, l->hs_in + used, l->hs_have - used);
	l->hs_have -= used;
	if (!l->ready && sx_chan_ready(l->chan)) {
		/* The client waits for CONFIRM before it sends: on the server
		 * nothing may follow the handshake yet. */
		if (l->hs_have != 0 && sx_chan_is_server(l->chan))
			return sx_fail(err, SX_E_INTEGRITY,
				       "peer sent %zu bytes before key confirmation", l->hs_have);
		/* On the client, what follows CONFIRM already belongs to the
		 * record stream (a receiver's ERROR): it stays in hs_in until
		 * sx_link_rx_feed hands it over. */
		sx_chan_take(l->chan, &l->k);
		l->ready = true;
	}
	if (!l->ready && l->hs_have == sizeof(l->hs_in))
		return sx_fail(err, SX_E_NET, "handshake message too large");
	return 0;
}

void sx_link_hs_output(sx_link *l, const uint8_t **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	if (l->chan == NULL || l->hs_out_len != 0)
		return;
	sx_chan_output(l->chan, buf, len);
	l->hs_out_len = *len;
}

void sx_link_hs_sent(sx_link *l)
{
	sx_chan_consume(l->chan, l->hs_out_len);
	l->hs_out_len = 0;
	const uint8_t *rest;
	size_t n;
	sx_chan_output(l->chan, &rest, &n);
	if (l->ready && n == 0) {
		sx_chan_free(l->chan);
		l->chan = NULL;
	}
}

size_t sx_link_rx_early(const sx_link *l)
{
	return l->ready ? l->hs_have : 0;
}

size_t sx_link_rx_feed(sx_link *l)
{
	size_t n = l->rx_need - l->rx_have;
	if (n > l->hs_have)
		n = l->hs_have;
	memcpy(l->rx + l->rx_have, l->hs_in, n);
	memmove(l->hs_in, l->hs_in + n, l->hs_have - n);
	l->hs_have -= n;
	return n;
}

void sx_link_rx_set(sx_link *l, uint8_t *buf, size_t cap)
{
	l->rx = buf;
	l->rx_cap = cap;
	l->rx_have = 0;
	l->rx_need = SX_REC_HDR_LEN;
}

void sx_link_rx_want(const sx_link *l, uint8_t **buf, size_t *len)
{
	*buf = l->rx + l->rx_have;
	*len = l->rx_need - l->rx_have;
}

int sx_link_rx_assemble(sx_link *l, size_t n, size_t *rec_len, sx_err *err)
{
	*rec_len = 0;
	/* A peer that completed the handshake only to be told why it is
	 * refused (sx_chan_result.refusal) has nothing of its read. */
	if (l->k.refusal[0] != '\0')
		return sx_fail(err, SX_E_AUTH, "%s", l->k.refusal);
	l->rx_have += n;
	if (l->rx_have < l->rx_need)
		return 0;
	if (l->rx_need == SX_REC_HDR_LEN) {
		size_t body = 0;
		size_t max = l->max_body;
		if (max > l->rx_cap - SX_REC_HDR_LEN)
			max = l->rx_cap - SX_REC_HDR_LEN;
		if (sx_record_check_header(&l->k.rx, l->rx, max, &body, err) < 0)
			return -1;
		l->rx_need = SX_REC_HDR_LEN + body;
		if (l->rx_have < l->rx_need)
			return 0;
	}
	*rec_len = l->rx_need;
	l->rx_have = 0;
	l->rx_need = SX_REC_HDR_LEN;
	return 0;
}

int sx_link_rx_input(sx_link *l, size_t n, bool *complete, uint8_t *type, uint8_t *flags,
		     uint8_t **pt, size_t *pt_len, sx_err *err)
{
	size_t len = 0;
	*complete = false;
	if (sx_link_rx_assemble(l, n, &len, err) < 0)
		return -1;
	if (len == 0)
		return 0;
	if (sx_record_open(&l->k.rx, l->rx, len, type, flags, pt, pt_len, err) < 0)
		return -1;
	*complete = true;
	return 0;
}

int sx_link_seal_msg(sx_link *l, const sx_msg *m, uint8_t *buf, size_t cap, size_t *len,
		     sx_err *err)
{
	size_t tag = sx_suite_tag_len(l->k.tx.suite);
	if (cap < SX_REC_HDR_LEN + tag)
		return sx_fail(err, SX_E_OTHER, "control buffer too small");
	sx_wbuf w = sx_wbuf_make(buf + SX_REC_HDR_LEN, cap - SX_REC_HDR_LEN - tag);
	sx_msg_encode(m, &w);
	if (w.overflow)
		return sx_fail(err, SX_E_OTHER, "control message does not fit");
	return sx_record_seal(&l->k.tx, SX_REC_CTRL, 0, buf, w.len, len, err);
}
