// SPDX-License-Identifier: GPL-2.0
/*
 * compat.c - nbd-client's command line (placeholder while it is written).
 */
#include "nbdctl.h"

/**
 * cmd_compat() - run nbd-client's command line
 * @argc: argument count
 * @argv: nbd-client's arguments, argv[0] the program or "compat"
 *
 * Return: nbd-client's exit code.
 */
int cmd_compat(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	nbdctl_err("compat: not implemented yet");
	return 1;
}
