/* engine/chat/conv: the names that can chat and the ids of conversations
 * (docs/PROTOCOL.md "Chat", "Conversations"). Pure. */
#include <stdlib.h>
#include <string.h>

#include "engine/chat/sx_chat.h"

static bool name_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int sx_chat_name_check(const char *name, size_t len, sx_err *err)
{
	if (len == 0)
		return sx_fail(err, SX_E_USAGE, "a name cannot be empty");
	if (len > SX_CHAT_NAME_MAX)
		return sx_fail(err, SX_E_USAGE, "a name is at most %d bytes", SX_CHAT_NAME_MAX);
	if (name[0] == '.' || name[0] == '-')
		return sx_fail(err, SX_E_USAGE, "a name cannot start with '%c'", name[0]);
	for (size_t i = 0; i < len; i++)
		if (!name_byte((unsigned char)name[i]))
			return sx_fail(err, SX_E_USAGE,
				       "a name is made of letters, digits, '.', '_' and '-'");
	return 0;
}

int sx_chat_conv_room(const char *room, char *out, size_t cap, sx_err *err)
{
	size_t len = strlen(room);
	if (sx_chat_name_check(room, len, err) < 0) {
		sx_err_prefix(err, "room '%.*s': ", SX_CHAT_NAME_MAX, room);
		return -1;
	}
	if (len + 2 > cap)
		return sx_fail(err, SX_E_USAGE, "room name too long");
	out[0] = '#';
	memcpy(out + 1, room, len + 1);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int sx_chat_conv_direct(const char *author, const char *const *to, size_t n, char *out, size_t cap,
			sx_err *err)
{
	int rc = -1;
	const char **all = NULL;
	size_t used = 1, m = 0;
	SX_ENSURE(n <= SX_CHAT_TO_MAX, err, SX_E_USAGE, "at most %d recipients", SX_CHAT_TO_MAX);
	all = calloc(n + 1, sizeof(*all));
	SX_ENSURE(all != NULL, err, SX_E_OTHER, "out of memory");
	all[0] = author;
	for (size_t i = 0; i < n; i++)
		all[i + 1] = to[i];
	for (size_t i = 0; i < n + 1; i++)
		if (sx_chat_name_check(all[i], strlen(all[i]), err) < 0) {
			sx_err_prefix(err, "'%.*s': ", SX_CHAT_NAME_MAX, all[i]);
			goto out;
		}
	qsort(all, n + 1, sizeof(*all), cmp_names);
	SX_ENSURE(cap >= 2, err, SX_E_USAGE, "conversation id too long");
	out[0] = '@';
	for (size_t i = 0; i < n + 1; i++) {
		if (i > 0 && strcmp(all[i], all[i - 1]) == 0)
			continue;
		size_t l = strlen(all[i]);
		SX_ENSURE(used + l + (m > 0) + 1 <= cap, err, SX_E_USAGE,
			  "conversation id too long");
		if (m > 0)
			out[used++] = ',';
		memcpy(out + used, all[i], l);
		used += l;
		m++;
	}
	out[used] = '\0';
	SX_ENSURE(m >= 2, err, SX_E_USAGE, "a message needs a recipient other than its author");
	rc = 0;
out:
	free(all);
	return rc;
}

int sx_chat_conv_check(const char *conv, size_t len, sx_err *err)
{
	sx_err e = {0};
	if (len < 2 || len > SX_CHAT_CONV_MAX || memchr(conv, '\0', len) != NULL)
		return sx_fail(err, SX_E_INTEGRITY, "malformed conversation id");
	if (conv[0] == '#') {
		if (sx_chat_name_check(conv + 1, len - 1, &e) < 0)
			return sx_fail(err, SX_E_INTEGRITY, "conversation id: %s", e.msg);
		return 0;
	}
	if (conv[0] != '@')
		return sx_fail(err, SX_E_INTEGRITY,
			       "a conversation id starts with '#' (room) or '@' (names)");
	size_t start = 1, names = 0, prev = 0, prev_len = 0;
	for (size_t i = 1; i <= len; i++) {
		if (i < len && conv[i] != ',')
			continue;
		size_t l = i - start;
		if (sx_chat_name_check(conv + start, l, &e) < 0)
			return sx_fail(err, SX_E_INTEGRITY, "conversation id: %s", e.msg);
		if (names > 0) {
			size_t k = l < prev_len ? l : prev_len;
			int c = memcmp(conv + prev, conv + start, k);
			if (c > 0 || (c == 0 && prev_len >= l))
				return sx_fail(err, SX_E_INTEGRITY,
					       "conversation id: names must be sorted and "
					       "distinct");
		}
		if (++names > SX_CHAT_TO_MAX + 1)
			return sx_fail(err, SX_E_INTEGRITY, "conversation id: too many names");
		prev = start;
		prev_len = l;
		start = i + 1;
	}
	if (names < 2)
		return sx_fail(err, SX_E_INTEGRITY, "conversation id: at least two names");
	return 0;
}

int sx_chat_conv_next(const char *conv, size_t *at, char buf[SX_CHAT_NAME_MAX + 1])
{
	if (conv[0] != '@')
		return 0;
	size_t i = *at == 0 ? 1 : *at;
	if (conv[i] == '\0' || (*at != 0 && conv[i - 1] == '\0'))
		return 0;
	size_t l = strcspn(conv + i, ",");
	if (l > SX_CHAT_NAME_MAX)
		l = SX_CHAT_NAME_MAX;
	memcpy(buf, conv + i, l);
	buf[l] = '\0';
	i += l;
	*at = conv[i] == ',' ? i + 1 : i;
	return 1;
}

bool sx_chat_conv_has(const char *conv, const char *name)
{
	size_t at = 0;
	char buf[SX_CHAT_NAME_MAX + 1];
	while (sx_chat_conv_next(conv, &at, buf) == 1)
		if (strcmp(buf, name) == 0)
			return true;
	return false;
}
