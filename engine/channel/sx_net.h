/* engine/channel/net: TCP sockets for both roles. */
#ifndef SX_NET_H
#define SX_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/sx_err.h"

int sx_net_listen(const char *addr_port, int *fd, int *port, sx_err *err) SX_MUST_CHECK;
int sx_net_connect(const char *host, const char *port, int timeout_ms, int *fd,
		   sx_err *err) SX_MUST_CHECK;
/* A decimal port 1-65535 (0 too when allow_any: listen on any free port):
 * 0, or -1. */
int sx_net_port_check(const char *port, bool allow_any) SX_MUST_CHECK;
/* Writes all of buf to the socket fd (blocking or not), waiting for room
 * up to timeout_ms in all: 0, or -1 (SX_E_NET). */
int sx_net_send_all(int fd, const void *buf, size_t len, int timeout_ms, sx_err *err) SX_MUST_CHECK;
/* Reads up to len bytes, waiting up to timeout_ms for some: the count
 * (0 at the peer's end), or -1 (SX_E_NET, also on the timeout). */
long sx_net_recv_some(int fd, void *buf, size_t len, int timeout_ms, sx_err *err) SX_MUST_CHECK;
/* Splits HOST:PORT / [V6]:PORT into buffers. */
int sx_net_split(const char *s, char *host, size_t hcap, char *port, size_t pcap) SX_MUST_CHECK;

#endif
