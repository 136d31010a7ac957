/* The state folder (sx_state.h): STATE_DIRECTORY, XDG_STATE_HOME, HOME. */
#include "common/sx_state.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* An environment variable holding an absolute path; NULL otherwise. */
static const char *abs_env(const char *name)
{
	const char *v = getenv(name);
	return v != NULL && v[0] == '/' ? v : NULL;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Why HOME cannot hold the state, into buf: for the error message. */
static const char *home_problem(const char *home, char *buf, size_t cap)
{
	if (home == NULL || home[0] == '\0')
		return "HOME is not set";
	snprintf(buf, cap, "HOME=%.100s%s is not %s", home, strlen(home) > 100 ? "..." : "",
		 home[0] != '/' ? "an absolute path" : "an existing folder");
	return buf;
}

int sx_state_dir(char *out, size_t cap, const char *sub, sx_err *err)
{
	const char *sd = abs_env("STATE_DIRECTORY");
	const char *xdg = abs_env("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	const char *slash = sub != NULL && sub[0] != '\0' ? "/" : "";
	if (sub == NULL)
		sub = "";
	int n;
	if (sd != NULL) {
		/* systemd lists several StateDirectory= entries with ':'. */
		size_t len = strcspn(sd, ":");
		n = snprintf(out, cap, "%.*s%s%s", (int)len, sd, slash, sub);
	} else if (xdg != NULL) {
		n = snprintf(out, cap, "%s/sxfer%s%s", xdg, slash, sub);
	} else if (home != NULL && home[0] == '/' && is_dir(home)) {
		n = snprintf(out, cap, "%s/.local/state/sxfer%s%s", home, slash, sub);
	} else {
		char why[160];
		return sx_fail(err, SX_E_USAGE,
			       "no folder for sxfer's state: %s, and neither STATE_DIRECTORY nor "
			       "XDG_STATE_HOME is set; set one of them to an absolute path",
			       home_problem(home, why, sizeof(why)));
	}
	if (n < 0 || (size_t)n >= cap)
		return sx_fail(err, SX_E_USAGE,
			       "the state folder's path is too long (over %zu bytes)", cap - 1);
	return 0;
}
