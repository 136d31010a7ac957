#include "tools/cli.h"

int sx_cmd_send(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sxfer send: not built yet\n");
	return 1;
}
