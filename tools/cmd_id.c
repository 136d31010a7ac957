#include "tools/cli.h"

int sx_cmd_id(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "sxfer id: not built yet\n");
	return 1;
}
