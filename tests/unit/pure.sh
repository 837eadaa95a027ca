#!/bin/sh
# The switch engine and the pure modules it stands on call nothing of the
# daemon, the event loop or libconfig: checked on the objects of libpure.la
# (each one's undefined symbols). libpure links libevent_core for http.c's
# buffers, so the link alone would not catch an event loop call. Run by
# `make check` from the build directory.
set -u
status=0
deny='^(event_|evtimer_|evsignal_|evhttp_|evbuffer_|bufferevent_|evconnlistener_|evutil_|config_(init|destroy|read|lookup|setting_|set_)|daemon_|transition_|route_|pool_|state_|history_|hook_|smoke_|control_|worker_|health_|metrics_)'
for m in engine switcher guard; do
	obj=
	for o in src/libpure_la-$m.o src/.libs/libpure_la-$m.o; do
		[ -f "$o" ] && obj=$o && break
	done
	if [ -z "$obj" ]; then
		echo "pure.sh: no object for src/$m.c" >&2
		status=1
		continue
	fi
	bad=$(nm -u "$obj" | awk '{print $NF}' | grep -E "$deny")
	if [ -n "$bad" ]; then
		echo "pure.sh: src/$m.c calls outside the pure modules:" $bad >&2
		status=1
	fi
done
exit $status
