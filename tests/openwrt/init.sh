#!/bin/sh
# Runs the OpenWrt procd service (cross/openwrt/l2vip/files/l2vip.init) with
# rc.common, procd and the UCI helpers replaced by recorders, and l2vip and
# jsonfilter by stand-ins that give the answers a case needs:
#
#   init.sh CASE
#
# Prints what the service did, one line per call (start, stop, restart,
# procd_set_param ...), and its exit status last. tests/packaging.rs runs
# each case and checks the lines.
set -u
here=$(cd "$(dirname "$0")" && pwd)
init=$here/../../cross/openwrt/l2vip/files/l2vip.init
case=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The sections of /etc/config/l2vip: "TYPE NAME option=value ...".
case $case in
	disabled|reload-disabled) sections='l2vip main enabled=0' ;;
	invalid) sections='l2vip main enabled=1 priority=300' ;;
	# enabled in an anonymous section, as the daemon reads it.
	*) sections='l2vip cfg01 node=r1
l2vip cfg02 enabled=1
service web interface=br-lan
service web6 interface=br-lan
service lan2 interface=eth1' ;;
esac

# The daemon's answer to `l2vip reload --json` and its exit status.
case $case in
	reload-applied) answer='{"ok": true, "data": {"services": 2, "restart_needed": []}}'; status=0 ;;
	reload-restart) answer='{"ok": true, "data": {"services": 2, "restart_needed": ["node", "heartbeat"]}}'; status=0 ;;
	reload-refused) answer='{"ok": false, "error": {"code": "invalid", "message": "line 3: bad"}}'; status=1 ;;
	reload-not-running) answer='cannot reach the daemon'; status=3 ;;
	*) answer=''; status=0 ;;
esac

cat >"$work/l2vip" <<EOF
#!/bin/sh
echo "l2vip \$*" >>"$work/calls"
printf '%s\n' '$answer'
exit $status
EOF
# jsonfilter -s TEXT -e '@.data.restart_needed[*]': one item per line.
cat >"$work/jsonfilter" <<'EOF'
#!/bin/sh
[ "$1" = -s ] && [ "$3" = -e ] && [ "$4" = '@.data.restart_needed[*]' ] || exit 2
printf '%s' "$2" | python3 -c 'import json, sys
for item in json.load(sys.stdin)["data"]["restart_needed"]:
    print(item)'
EOF
/bin/chmod +x "$work/l2vip" "$work/jsonfilter"
PATH=$work:$PATH

record() { echo "$*" >>"$work/calls"; }

# UCI (config_load, config_foreach, config_get, config_get_bool).
config_load() { record "config_load $1"; }
# (No pipes: the callbacks' variables must reach the caller, as in
# OpenWrt's functions.sh.)
config_foreach() {
	_fe_callback=$1 _fe_type=$2
	shift 2
	_fe_list=$(printf '%s\n' "$sections" | awk -v t="$_fe_type" '$1 == t { print $2 }')
	for _fe_name in $_fe_list; do
		"$_fe_callback" "$_fe_name" "$@"
	done
}
section_option() { # section_option SECTION OPTION
	printf '%s\n' "$sections" | while read -r _t name options; do
		[ "$name" = "$1" ] || continue
		for pair in $options; do
			[ "${pair%%=*}" = "$2" ] && echo "${pair#*=}"
		done
	done
}
config_get() { eval "$1=\$(section_option \"\$2\" \"\$3\")"; eval "[ -n \"\$$1\" ] || $1=\${4:-}"; }
config_get_bool() { config_get "$@"; }
# uci_load_validate PACKAGE TYPE SECTION CALLBACK SPEC...: the options as
# variables (spec defaults for absent ones), then CALLBACK SECTION STATUS;
# priority must be 1..255 (the one range a case breaks).
uci_load_validate() {
	_v_section=$3 _v_callback=$4 _v_status=0
	shift 4
	for _v_spec in "$@"; do
		_v_name=${_v_spec%%:*}
		_v_value=$(section_option "$_v_section" "$_v_name")
		_v_default=$(echo "$_v_spec" | cut -s -d: -f3)
		eval "$_v_name=\${_v_value:-\$_v_default}"
	done
	_v_priority=$(section_option "$_v_section" priority)
	[ -z "$_v_priority" ] || [ "$_v_priority" -le 255 ] || _v_status=1
	"$_v_callback" "$_v_section" "$_v_status"
}

# procd and rc.common.
procd_open_instance() { record procd_open_instance; }
procd_close_instance() { record procd_close_instance; }
procd_set_param() { record "procd_set_param $*"; }
procd_append_param() { record "procd_append_param $*"; }
procd_add_reload_trigger() { record "procd_add_reload_trigger $*"; }
procd_add_validation() { record "procd_add_validation $*"; }
start() { record start; }
stop() { record stop; }
restart() { record restart; }
mkdir() { record "mkdir $*"; }
chown() { record "chown $*"; }
chmod() { record "chmod $*"; }

# shellcheck source=/dev/null
. "$init"
# shellcheck disable=SC2034 # read by the sourced service
PROG=l2vip

case $case in
	start*|disabled|invalid) start_service 2>"$work/stderr" ;;
	reload*) reload_service 2>"$work/stderr" ;;
	triggers) service_triggers ;;
esac
status=$?
cat "$work/calls" 2>/dev/null
sed 's/^/stderr: /' "$work/stderr" 2>/dev/null
echo "status $status"
