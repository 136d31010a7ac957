/* The terminal of an interactive session: raw mode and a small line
 * editor (printable input, backspace, Enter; Ctrl-C, Ctrl-D and /quit
 * end; /who asks who is here), what arrives drawn above the line being
 * typed. And the output helpers every mode uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/sx_esc.h"
#include "common/sx_util.h"
#include "engine/chat/client_int.h"

void chat_clock(int64_t ms, char out[16])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (localtime_r(&t, &tm) == NULL || strftime(out, 16, "%H:%M:%S", &tm) == 0)
		snprintf(out, 16, "--:--:--");
}

void chat_json_str(FILE *f, const char *s, size_t n)
{
	size_t cap = 6 * n + 3;
	char *buf = malloc(cap);
	if (buf == NULL) {
		fputs("\"\"", f);
		return;
	}
	sx_esc(buf, cap, s, n, SX_ESC_JSON);
	fputc('"', f);
	fputs(buf, f);
	fputc('"', f);
	free(buf);
}

/* The prompt and the line being typed, on the terminal's last line. */
static void redraw(chat_client *c)
{
	FILE *f = c->cfg->out;
	size_t cap = 4 * c->tty.edit_len + 1;
	char *text = malloc(cap);
	fputs("\r\x1b[K", f);
	fputs(c->tty.prompt, f);
	if (text != NULL) {
		sx_esc(text, cap, c->tty.edit, c->tty.edit_len, SX_ESC_TEXT);
		fputs(text, f);
	}
	free(text);
	fflush(f);
}

void chat_show(chat_client *c, const char *s)
{
	FILE *f = c->cfg->out;
	if (!c->tty.on) {
		fputs(s, f);
		fputc('\n', f);
		fflush(f);
		return;
	}
	fputs("\r\x1b[K", f);
	fputs(s, f);
	fputs("\r\n", f);
	redraw(c);
}

int chat_tty_start(chat_client *c, sx_err *err)
{
	chat_tty *t = &c->tty;
	int fd = c->cfg->in_fd;
	struct termios raw;
	t->edit = malloc(CHAT_EDIT_MAX);
	if (t->edit == NULL)
		return sx_fail(err, SX_E_OTHER, "out of memory");
	if (tcgetattr(fd, &t->saved) < 0)
		return 0; /* not a terminal after all: lines as from a pipe */
	raw = t->saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG | IEXTEN);
	raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &raw) < 0)
		return 0;
	t->on = true;
	char conv[64];
	sx_text(conv, sizeof(conv), c->post_conv, strlen(c->post_conv));
	snprintf(t->prompt, sizeof(t->prompt), "%s> ", conv);
	chat_show(c, "* type a message and Enter; /who: who is here; /quit or Ctrl-D: end");
	return 0;
}

void chat_tty_stop(chat_client *c)
{
	chat_tty *t = &c->tty;
	if (!t->on)
		return;
	fputs("\r\x1b[K", c->cfg->out);
	fflush(c->cfg->out);
	(void)tcsetattr(c->cfg->in_fd, TCSANOW, &t->saved);
	t->on = false;
}

/* Enter: a command, or a line queued for posting. */
static int enter(chat_client *c, sx_err *err)
{
	chat_tty *t = &c->tty;
	size_t n = t->edit_len;
	t->edit_len = 0;
	if (n == 5 && memcmp(t->edit, "/quit", 5) == 0) {
		c->quit = true;
		return 0;
	}
	if (n == 4 && memcmp(t->edit, "/who", 4) == 0) {
		sx_chat_msg *m = c->m_out;
		memset(m, 0, sizeof(*m));
		m->type = SX_MSG_CHAT_WHO;
		return chat_send(c, m, err);
	}
	if (n == 0)
		return 0;
	if (c->in_cap - c->in_len < n + 1) {
		chat_refused_local(c, "busy", "too many lines wait for the server's answer");
		return 0;
	}
	memcpy(c->in + c->in_len, t->edit, n);
	c->in[c->in_len + n] = '\n';
	c->in_len += n + 1;
	return 0;
}

static void backspace(chat_tty *t)
{
	/* One character: its UTF-8 continuation bytes too. */
	while (t->edit_len > 0 && ((uint8_t)t->edit[t->edit_len - 1] & 0xc0) == 0x80)
		t->edit_len--;
	if (t->edit_len > 0)
		t->edit_len--;
}

int chat_tty_input(chat_client *c, const uint8_t *p, size_t n, sx_err *err)
{
	chat_tty *t = &c->tty;
	for (size_t i = 0; i < n && !c->quit; i++) {
		uint8_t b = p[i];
		if (t->esc == 1) { /* ESC x, or ESC [ ... final */
			t->esc = b == '[' ? 2 : 0;
			continue;
		}
		if (t->esc == 2) {
			if (b >= 0x40 && b <= 0x7e)
				t->esc = 0;
			continue;
		}
		if (b == 0x1b)
			t->esc = 1;
		else if (b == '\r' || b == '\n')
			SX_GUARD(enter(c, err));
		else if (b == 0x03 || (b == 0x04 && t->edit_len == 0))
			c->quit = true;
		else if (b == 0x7f || b == 0x08)
			backspace(t);
		else if (b == 0x15)
			t->edit_len = 0;
		else if (b >= 0x20 && t->edit_len < CHAT_EDIT_MAX)
			t->edit[t->edit_len++] = (char)b;
	}
	redraw(c);
	return 0;
out:
	return -1;
}
