# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The error trap of the shell scripts under tools/ that run with `set -e`.
#
# Under `set -e` a command that fails where nothing tests it ends the
# script at once, and says nothing: make reports only "Error 1".  Sourced
# right after `set -euo pipefail`, this makes such an exit name the
# script, the line, the command, its exit status and the functions it was
# called from, on stderr:
#
#   setup.sh: line 95: `have=$(installed | sort -V)' failed (exit status 1)
#
# A script's own die() still says what to do; this is the net under the
# paths that have no die().  Usage:
#
#   set -euo pipefail
#   . "$(dirname "${BASH_SOURCE[0]}")/../errtrap.sh"	# path to this file

# nbd_errtrap STATUS PIPESTATUS COMMAND: the ERR trap's body.
nbd_errtrap()
{
	local status=$1 pipe=$2 cmd=$3 file i calls='' what

	# Only a shell that -e is about to end reports.  A command
	# substitution does not inherit -e (bash without inherit_errexit):
	# it carries on, and the assignment that used it fails in its caller,
	# which reports then.
	[[ $- == *e* ]] || return 0
	file=${BASH_SOURCE[1]:-$0}
	# FUNCNAME[0] is this function, the last entry "main".
	for ((i = 1; i < ${#FUNCNAME[@]} - 1; i++)); do
		calls+=" ${FUNCNAME[i]}() line ${BASH_LINENO[i]} <-"
	done
	[[ -z $calls ]] || calls=" (in${calls% <-})"
	# BASH_COMMAND of a pipeline is its last command, which may not be
	# the one that failed: give every status.
	what="\`$cmd' failed (exit status $status)"
	[[ $pipe != *' '* ]] ||
		what="a pipeline ending in \`$cmd' failed (exit statuses $pipe)"
	printf '%s: line %s: %s%s\n' "${file##*/}" "${BASH_LINENO[0]}" \
		"$what" "$calls" >&2
}

# -E: functions, command substitutions and subshells inherit the trap.
set -E
# $? and PIPESTATUS are read in the trap's own words, before a command
# of the trap resets them.
trap 'nbd_errtrap "$?" "${PIPESTATUS[*]}" "$BASH_COMMAND"' ERR
