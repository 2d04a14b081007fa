#!/bin/sh
# Run by the OpenWrt packages CI on the target: test.sh PACKAGE VERSION.
case "$1" in
	l2vip)
		l2vip --version | grep -F "$2" &&
			l2vip check-config --offline -c /etc/config/l2vip >/dev/null
		;;
esac
