// SPDX-License-Identifier: GPL-2.0
/*
 * The nbd driver's tracepoints (trace.h) are instantiated here.
 */
#include "nbd.h"

#define CREATE_TRACE_POINTS
#include "trace.h"
