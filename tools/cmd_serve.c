#include "tools/cli.h"

int sx_cmd_serve(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sxfer serve: not built yet\n");
	return 1;
}
