/* engine/transfer: the warning every long-running role (serve, send, get)
 * logs when its own certificate is due for renewal (docs/REVOCATION.md,
 * "Lifetime warnings"). */
#include "common/sx_util.h"
#include "engine/transfer/sx_transfer.h"

bool sx_cert_life_warn(const sx_identity *id, time_t now)
{
	sx_lifetime l;
	char left[128], na[32];
	X509 *leaf = id != NULL && id->chain != NULL ? sk_X509_value(id->chain, 0) : NULL;
	if (leaf == NULL)
		return false;
	sx_cert_lifetime(leaf, now, &l);
	if (!sx_lifetime_renew_due(&l))
		return false;
	sx_lifetime_describe(&l, left, sizeof(left));
	sx_time_format(l.not_after, na, sizeof(na));
	sx_log(l.left <= 0 ? "error" : "warn", "cert", "name=%s left=%s not_after=%s hint=%s",
	       SX_LOGQ(id->name), SX_LOGQ(left), SX_LOGT(na),
	       SX_LOGQ(l.left <= 0 ? "expired: a new certificate from the CA (sxfer ca issue)"
				   : "sxfer renew"));
	return true;
}
