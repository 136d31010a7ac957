#include "tools/cli.h"

int sx_cmd_ca(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sxfer ca: not built yet\n");
	return 1;
}
