/* engine/transfer: the send pipeline on a connection the server accepted
 * (its side of sxfer get, serve_out.c). Internal to engine/transfer. */
#ifndef SX_SEND_SERVE_H
#define SX_SEND_SERVE_H

#include "engine/channel/sx_link.h"
#include "engine/transfer/sx_transfer.h"

/* send_session.c: the server's side of sxfer get. Sends cfg->paths on
 * sock, whose link (from, already past its handshake and the client's GET)
 * is moved in; a failure before anything was sent is told to the client in
 * an ERROR. Takes sock and from in every case. */
int sx_send_serve(const sx_send_cfg *cfg, int sock, sx_link *from, sx_send_stats *stats,
		  sx_err *err) SX_MUST_CHECK;

/* Tells the peer why a session cannot begin, in a sealed ERROR on a link
 * that has sent nothing since its handshake (best effort: blocking, at
 * most 5 s). */
void sx_send_error_now(sx_link *l, int sock, const sx_err *why);

#endif
