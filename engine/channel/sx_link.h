/* engine/link: what the sender and the receiver share on one connection:
 * driving the channel's handshake bytes, and assembling sealed records from
 * the byte stream (header first, then exactly its body, so a record lands in
 * its buffer without a copy). Pure: the owner does the I/O. */
#ifndef SX_LINK_H
#define SX_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/channel/sx_channel.h"
#include "engine/record/sx_record.h"

#define SX_HS_BUF (64u * 1024)

typedef struct sx_link {
	sx_chan *chan; /* until the handshake output is all sent */
	bool ready;    /* keys taken */
	sx_chan_result k;
	uint8_t hs_in[SX_HS_BUF];
	size_t hs_have;
	size_t hs_out_len; /* bytes of channel output in flight, 0 when none */

	uint8_t *rx; /* buffer of the record being assembled */
	size_t rx_cap;
	size_t rx_have;
	size_t rx_need; /* SX_REC_HDR_LEN until the header is in, then the record length */
	size_t max_body;
} sx_link;

int sx_link_init(sx_link *l, sx_chan_ctx *ctx, sx_err *err) SX_MUST_CHECK;
void sx_link_free(sx_link *l);
/* Moves a ready link's keys and peer into to (a connection handed from
 * the server's receive loop to the thread that sends, sxfer get); from is
 * left not ready, holding nothing. The record buffer is not moved: give to
 * its own with sx_link_rx_set. */
void sx_link_move(sx_link *to, sx_link *from);

/* Handshake: where to recv next, and what to do with n received bytes.
 * After sx_link_hs_input returns, check l->ready. */
void sx_link_hs_recv_buf(sx_link *l, uint8_t **buf, size_t *len);
int sx_link_hs_input(sx_link *l, size_t n, sx_err *err) SX_MUST_CHECK;
/* Channel output to send (NULL/0 when nothing or a send is in flight);
 * sx_link_hs_sent after the send completes. */
void sx_link_hs_output(sx_link *l, const uint8_t **buf, size_t *len);
void sx_link_hs_sent(sx_link *l);
/* Client: sealed records that arrived in the same read as the end of the
 * handshake. After sx_link_rx_set, while sx_link_rx_early() > 0, pass
 * sx_link_rx_feed() (bytes moved into the record buffer, never more than
 * the record being assembled needs) to sx_link_rx_input. */
size_t sx_link_rx_early(const sx_link *l);
size_t sx_link_rx_feed(sx_link *l);

/* Records: give the assembler a buffer (SX_REC_HDR_LEN + max_body + tag). */
void sx_link_rx_set(sx_link *l, uint8_t *buf, size_t cap);
void sx_link_rx_want(const sx_link *l, uint8_t **buf, size_t *len);
/* Accounts n received bytes; *rec_len is set (non-zero) when the buffer
 * holds a whole record, its header checked, not yet opened: the caller
 * opens it, with sx_record_open on k.rx or on a worker's lane after
 * sx_record_reserve (the receiver's pool), in sequence order either way.
 * The next record is assembled into the buffer given by sx_link_rx_set
 * (the same one unless another is given). */
int sx_link_rx_assemble(sx_link *l, size_t n, size_t *rec_len, sx_err *err) SX_MUST_CHECK;
/* Accounts n received bytes. *complete is set when the buffer holds a whole
 * record, which is then opened in place (type, flags, plaintext). A server
 * link whose peer is refused (k.refusal) fails every call with that reason:
 * it only sends the ERROR that says so. */
int sx_link_rx_input(sx_link *l, size_t n, bool *complete, uint8_t *type, uint8_t *flags,
		     uint8_t **pt, size_t *pt_len, sx_err *err) SX_MUST_CHECK;

/* Seals a control message into buf (cap bytes); *len is the record length. */
int sx_link_seal_msg(sx_link *l, const sx_msg *m, uint8_t *buf, size_t cap, size_t *len,
		     sx_err *err) SX_MUST_CHECK;

#endif
