/* Escaping of untrusted text (file names, peer names, reasons a peer sent)
 * for the three places it is shown: log values, terminal lines and JSON
 * strings. One scanner decides what a byte is; the three forms differ only
 * in how they spell what must not pass through raw.
 *
 * Passes through raw: printable ASCII and well-formed UTF-8 (RFC 3629) of
 * U+00A0 and up. Everything else is escaped:
 *   - control bytes 0x00-0x1f and DEL 0x7f;
 *   - C1 controls U+0080-U+009F (terminals may act on them as they act on
 *     ESC), one escape per byte of their encoding;
 *   - every byte that is not part of well-formed UTF-8: stray continuation
 *     bytes, truncated sequences, overlong forms (C0, C1, E0 80-9F,
 *     F0 80-8F), UTF-16 surrogates (ED A0-BF) and anything above
 *     U+10FFFF (F4 90-BF, F5-FF); one escape per byte, and the scan
 *     resumes at the next byte.
 *
 * Log and terminal form: \n \r \t for those three, \xHH (lower-case hex)
 * for every other byte escaped above, \\ for a backslash; the log form also
 * writes \" for a double quote (its values are quoted).
 *
 * JSON form (RFC 8259): \" \\ \b \f \n \r \t, \u00XX for the other control
 * bytes, DEL and the C1 controls, and \ufffd (U+FFFD REPLACEMENT
 * CHARACTER) for each byte that is not well-formed UTF-8, so the output is
 * valid UTF-8 JSON for any input. */
#ifndef SX_ESC_H
#define SX_ESC_H

#include <stddef.h>
#include <stdint.h>

#define SX_ESC_QUOTE  1u /* escape " as \" */
#define SX_ESC_BSLASH 2u /* escape \ as \\ */
#define SX_ESC_JSON   4u /* JSON spelling (implies QUOTE and BSLASH) */

#define SX_ESC_LOG  (SX_ESC_QUOTE | SX_ESC_BSLASH)
#define SX_ESC_TEXT SX_ESC_BSLASH

/* n for a NUL-terminated s. */
#define SX_ESC_CSTR SIZE_MAX

/* The longest text one input byte or character escapes to ("\ufffd"). */
#define SX_ESC_UNIT_MAX 6

/* Escapes the unit at the start of s[0, n) (n > 0): one byte, or one
 * well-formed UTF-8 character. Writes its spelling to out (not NUL
 * terminated), sets *outlen and returns the number of input bytes used. */
size_t sx_esc_unit(const uint8_t *s, size_t n, unsigned how, char out[SX_ESC_UNIT_MAX],
		   size_t *outlen);

/* Writes the escaped s[0, n) (n == SX_ESC_CSTR: up to its NUL; s == NULL:
 * empty) to dst, NUL terminated. Cuts only between whole escapes, so what
 * fits is never a partial escape. Returns the length of the whole escaped
 * text (as snprintf does): a result >= cap means dst holds a cut copy. */
size_t sx_esc(char *dst, size_t cap, const char *s, size_t n, unsigned how);

/* The log value form: s escaped (SX_ESC_LOG) between double quotes, in buf
 * of cap bytes (cap >= 8). A value whose escaped form does not fit ends
 * in ... before the closing quote. Returns buf. */
const char *sx_log_quote(char *buf, size_t cap, const char *s, size_t n);

/* The log form of a value expected to be one word (an address, a name
 * from a fixed set): as it is when it is non-empty and every byte is a
 * letter, a digit or one of ._:/@+-[]%, or else as sx_log_quote writes
 * it. Returns buf. */
const char *sx_log_token(char *buf, size_t cap, const char *s, size_t n);

/* The terminal form (SX_ESC_TEXT) in buf, cut as sx_log_quote cuts.
 * Returns buf. */
const char *sx_text(char *buf, size_t cap, const char *s, size_t n);

/* Every string value of an sx_log line goes through SX_LOGQ (or SX_LOGQN
 * for a value with a length, SX_LOGT for a one-word value), written as
 * key=%s: the value is quoted and escaped into a buffer that lives until
 * the end of the enclosing block (tests/lint/log_values.py checks every
 * call). */
#define SX_LOGQ_CAP    1024
#define SX_LOGQ(s)     sx_log_quote((char[SX_LOGQ_CAP]){0}, SX_LOGQ_CAP, (s), SX_ESC_CSTR)
#define SX_LOGQN(s, n) sx_log_quote((char[SX_LOGQ_CAP]){0}, SX_LOGQ_CAP, (s), (n))
#define SX_LOGT(s)     sx_log_token((char[SX_LOGQ_CAP]){0}, SX_LOGQ_CAP, (s), SX_ESC_CSTR)

/* A file name or a peer's text in a line for a person (stderr, stdout). */
#define SX_TEXT_CAP 2048
#define SX_TEXT(s)  sx_text((char[SX_TEXT_CAP]){0}, SX_TEXT_CAP, (s), SX_ESC_CSTR)

#endif
