#!/usr/bin/env bash
# ddrescue_testsuite.sh - run GNU ddrescue's own test suite against ddfs.
#
# Usage:
#   bench/ddrescue_testsuite.sh SOURCE_DIR [-- EXTRA_DDRESCUE_OPTIONS...]
#
# SOURCE_DIR is an unpacked GNU ddrescue release (the folder holding
# testsuite/check.sh and its data files), or that testsuite folder itself.
# The script makes a scratch objdir (mktemp -d) holding two wrappers,
#   ./ddrescue     -> exec "$DDFS" rescue EXTRA_DDRESCUE_OPTIONS... "$@"
#   ./ddrescuelog  -> exec "$DDFS" log "$@"
# and runs `check.sh TESTSUITE_DIR VERSION` from there, as `make check` does
# (check.sh runs ./ddrescue and ./ddrescuelog from the current folder and
# takes the testsuite folder as its first argument, the version as 2nd).
# check.sh is run by bash, not /bin/sh: Debian's dash has no $LINENO, and
# check.sh identifies each failed check by its $LINENO. It runs from a copy
# in the objdir whose test_failed() also logs each failure mark to a file.
# It then prints how many checks passed and failed, and for each failed one
# its check.sh line number (check.sh numbers its checks by $LINENO) and the
# source lines of that check. It exits 0 if all checks passed, 1 if any
# failed (or check.sh aborted), 2 on a usage error. The scratch dir is
# always removed.
#
# Environment:
#   DDFS             ddfs executable (default: <repo>/.venv/bin/ddfs, the
#                    repo being this script's parent folder)
#   DDRESCUE_BIN     run this program instead of `ddfs rescue` (e.g.
#                    /usr/bin/ddrescue, to check the suite itself)
#   DDRESCUELOG_BIN  run this program instead of `ddfs log`
#   CHECK_TIMEOUT    seconds before check.sh is killed (default 900)
#   CHECK_SHELL      shell to run check.sh with (default: this bash)
#   LOG_FILE         if set, check.sh's raw stdout+stderr is copied there
#
# Examples:
#   bench/ddrescue_testsuite.sh /work/ddr130/src
#   bench/ddrescue_testsuite.sh /work/ddr127/src -- --schedule=ddrescue-1.27
#   DDRESCUE_BIN=/usr/bin/ddrescue DDRESCUELOG_BIN=/usr/bin/ddrescuelog \
#       bench/ddrescue_testsuite.sh /work/ddr127/src

set -u

usage() {
	echo "usage: $0 SOURCE_DIR [-- EXTRA_DDRESCUE_OPTIONS...]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
case "$1" in -h|--help) sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//' ; exit 0 ;; esac
src=$1
shift
if [ $# -gt 0 ]; then
	[ "$1" = "--" ] || usage
	shift
fi
extra=("$@")

# Locate the testsuite folder and the release's version.
if [ -f "$src/testsuite/check.sh" ]; then
	testdir=$(cd "$src/testsuite" && pwd) || exit 2
elif [ -f "$src/check.sh" ]; then
	testdir=$(cd "$src" && pwd) || exit 2
else
	echo "$0: no testsuite/check.sh (or check.sh) in '$src'" >&2
	exit 2
fi
version=$(sed -n 's/^pkgversion=//p' "$testdir/../configure" 2>/dev/null | head -n 1)
[ -n "$version" ] || version=unknown

# Locate the programs under test.
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 2
ddfs=${DDFS:-$script_dir/../.venv/bin/ddfs}
if [ -z "${DDRESCUE_BIN:-}" ] || [ -z "${DDRESCUELOG_BIN:-}" ]; then
	if [ ! -x "$ddfs" ]; then
		echo "$0: ddfs not found at '$ddfs' (set DDFS)" >&2
		exit 2
	fi
	ddfs=$(cd "$(dirname "$ddfs")" && pwd)/$(basename "$ddfs")
fi

objdir=$(mktemp -d "${TMPDIR:-/tmp}/ddrescue_testsuite.XXXXXX") || exit 2
trap 'rm -rf "$objdir"' EXIT
trap 'exit 130' INT TERM

# Write the wrappers. Arguments are quoted with %q so any EXTRA survives.
{
	printf '#!%s\n' "$BASH"
	if [ -n "${DDRESCUE_BIN:-}" ]; then
		printf 'exec %q' "$DDRESCUE_BIN"
	else
		printf 'exec %q rescue' "$ddfs"
	fi
	if [ ${#extra[@]} -gt 0 ]; then printf ' %q' "${extra[@]}"; fi
	printf ' "$@"\n'
} > "$objdir/ddrescue"
{
	printf '#!%s\n' "$BASH"
	if [ -n "${DDRESCUELOG_BIN:-}" ]; then
		printf 'exec %q "$@"\n' "$DDRESCUELOG_BIN"
	else
		printf 'exec %q log "$@"\n' "$ddfs"
	fi
} > "$objdir/ddrescuelog"
chmod +x "$objdir/ddrescue" "$objdir/ddrescuelog"

echo "suite:       $testdir (ddrescue $version)"
echo "ddrescue:    $(sed -n 2p "$objdir/ddrescue")"
echo "ddrescuelog: $(sed -n 2p "$objdir/ddrescuelog")"

# Run check.sh as `make check` does. stdin is /dev/null so that nothing
# can wait on a terminal; stdout carries check.sh's " LINE" failure marks.
# check.sh runs from a copy whose test_failed() also appends its mark to
# $objdir/failed_checks (same line count, so $LINENO is unchanged); its
# stdout interleaves marks with cmp messages and other programs' output.
marks_file=$objdir/failed_checks
: > "$marks_file"
# shellcheck disable=SC2016  # literal shell code for check.sh
sed 's/^test_failed() { fail=1 ;/test_failed() { fail=1 ; echo "$1${2:+($2)}" >> "${objdir}"\/failed_checks ;/' \
	"$testdir/check.sh" > "$objdir/check.sh"
if ! grep -q 'failed_checks' "$objdir/check.sh"; then
	echo "$0: cannot hook test_failed() in check.sh; reading marks from its stdout" >&2
	marks_file=
fi
out=$objdir/check.out
err=$objdir/check.err
start=$(date +%s)
(cd "$objdir" && exec timeout "${CHECK_TIMEOUT:-900}" \
	"${CHECK_SHELL:-$BASH}" "$objdir/check.sh" "$testdir" "$version") \
	< /dev/null > "$out" 2> "$err"
rc=$?
elapsed=$(( $(date +%s) - start ))
if [ -n "${LOG_FILE:-}" ]; then
	{ echo "=== stdout"; cat "$out"; echo; echo "=== stderr"; cat "$err"; } > "$LOG_FILE"
fi

# Check sites are the check.sh lines calling `test_failed $LINENO`.
# shellcheck disable=SC2016  # a literal $LINENO is wanted
check_lines=$(grep -n 'test_failed \$LINENO' "$testdir/check.sh" | cut -d: -f1)
total=$(printf '%s\n' "$check_lines" | grep -c .)

# Failure marks: " LINE" or " LINE(loop values)"; keep only real check lines
# so that stray output of the programs under test is not mistaken for one.
if [ -n "$marks_file" ]; then
	raw_marks=$(cat "$marks_file")
else
	raw_marks=$(grep -oE ' [0-9]+(\([^)]*\))?' "$out" | sed 's/^ //')
fi
marks=$(printf '%s\n' "$raw_marks" | grep . |
	while IFS= read -r m; do
		n=${m%%(*}
		if printf '%s\n' "$check_lines" | grep -qx "$n"; then
			printf '%s\n' "$m"
		fi
	done)
failed_lines=$(printf '%s\n' "$marks" | sed 's/(.*//' | grep . | sort -nu)
nfailed=$(printf '%s\n' "$failed_lines" | grep -c .)
nmarks=$(printf '%s\n' "$marks" | grep -c .)
npassed=$((total - nfailed))

echo
echo "check.sh exit status $rc after ${elapsed}s"
echo "checks: $total   passed: $npassed   failed: $nfailed   (failure marks incl. loop iterations: $nmarks)"
if [ "$nfailed" -gt 0 ]; then
	echo
	echo "failed checks (check.sh line: source):"
	for n in $failed_lines; do
		vals=$(printf '%s\n' "$marks" | grep -E "^$n(\(|$)" | grep -oE '\(.*\)' |
			tr '\n' ' ')
		echo "--- line $n ${vals:+iterations: $vals}"
		# Show the check with the command it tests: walk back over
		# continued lines and over a `[ $? = N ]` test's command line.
		awk -v n="$n" '{ l[NR] = $0 }
			END {
				s = n
				while (s > 1 && (l[s-1] ~ /(\\|\|\||\|)[ \t]*$/ ||
				       l[s] ~ /^[ \t]*(\[ \$\? |test_failed)/)) s--
				for (i = s; i <= n; i++) print "    " l[i]
			}' "$testdir/check.sh"
	done
fi
if [ $rc -ne 0 ] && [ "$nfailed" -eq 0 ]; then
	echo
	echo "check.sh failed without failure marks (framework failure, timeout or crash):"
	tail -n 5 "$out" "$err"
fi
if [ -s "$err" ] && [ -z "${LOG_FILE:-}" ]; then
	echo
	echo "(check.sh stderr: $(wc -l < "$err") lines; set LOG_FILE=path to keep it)"
fi

[ $rc -eq 0 ] && [ "$nfailed" -eq 0 ] && exit 0
exit 1
