#!/bin/sh
# The entrypoint of the test bed's Docker-in-Docker service image (test/images/build.sh), which a
# job's `services: [docker:dind]` starts as GitLab starts docker:dind: with DOCKER_TLS_CERTDIR set
# (the image sets /certs) it makes a CA, a server and a client certificate in
# $DOCKER_TLS_CERTDIR/{ca,server,client}, the client's key readable by any user (the job container's
# user need not be root; the runner shares /certs/client with the job), and starts dockerd with
# --tlsverify; without it, plain TCP.
#
# Where it differs from docker:dind, for the test bed's rule that nothing leaves loopback: dockerd
# listens on DIND_ADDR (default 127.0.0.1:2376, or :2375 without TLS), never on every address, and
# runs with no bridge, no iptables, no masquerading and no IP forwarding; the service container
# shares the host's network (a runner's network_mode = "host"), so jobs reach it on 127.0.0.1.
# Arguments that start with "-" are added to dockerd's; any other command runs instead of dockerd.
set -eu

certdir=${DOCKER_TLS_CERTDIR:-}

# RSA keys of 4096 bits, as docker:dind makes them: seconds each on a small machine, so a job that
# starts at once finds no certificates in /certs/client yet, and no Engine listening.
new_key() {
	openssl genrsa -out "$1" 4096 2>/dev/null
}

# A key and a certificate signed by the CA: DIR SUBJECT EXTENSIONS.
signed_cert() {
	new_key "$1/key.pem"
	# The job's user reads the client's key, whoever that is: docker:dind makes it 0644 too.
	[ "$1" != "$certdir/client" ] || chmod 644 "$1/key.pem"
	openssl req -new -key "$1/key.pem" -sha256 -subj "$2" -out "$1/csr.pem"
	printf '%s\n' "$3" >"$1/ext.cnf"
	openssl x509 -req -in "$1/csr.pem" -CA "$certdir/ca/cert.pem" -CAkey "$certdir/ca/key.pem" \
		-CAcreateserial -days 825 -sha256 -extfile "$1/ext.cnf" -out "$1/cert.pem" 2>/dev/null
	cp "$certdir/ca/cert.pem" "$1/ca.pem"
	rm -f "$1/csr.pem" "$1/ext.cnf"
	openssl verify -CAfile "$1/ca.pem" "$1/cert.pem" >/dev/null
}

# The names a job may reach the service by: its alias "docker", localhost, this host's names and
# addresses (host networking: the host's), and DOCKER_TLS_SAN (as docker:dind takes it: "DNS:x,IP:y").
server_names() {
	{
		echo DNS:docker
		echo DNS:localhost
		echo "DNS:$(hostname)"
		echo IP:127.0.0.1
		echo IP:::1
		for ip in $(hostname -I 2>/dev/null); do echo "IP:$ip"; done
		[ -z "${DOCKER_TLS_SAN:-}" ] || echo "$DOCKER_TLS_SAN" | tr ',' '\n'
	} | sort -u | paste -sd, -
}

# As docker:dind: a CA is made when there is none; the server and client certificates are made at
# every start, so they name the addresses of this start.
make_certs() {
	mkdir -p "$certdir/ca" "$certdir/server" "$certdir/client"
	if [ ! -s "$certdir/ca/key.pem" ] || [ ! -s "$certdir/ca/cert.pem" ]; then
		new_key "$certdir/ca/key.pem"
		openssl req -x509 -new -key "$certdir/ca/key.pem" -days 825 -sha256 \
			-subj "/CN=docker:dind CA" -out "$certdir/ca/cert.pem"
	fi
	chmod 600 "$certdir/ca/key.pem"
	signed_cert "$certdir/server" "/CN=docker:dind server" "subjectAltName=$(server_names)
extendedKeyUsage=serverAuth"
	chmod 600 "$certdir/server/key.pem"
	signed_cert "$certdir/client" "/CN=docker:dind client" "extendedKeyUsage=clientAuth"
	chmod 644 "$certdir/client/cert.pem" "$certdir/client/ca.pem"
}

# A container that is not privileged (a runner's cap_add, security_opt and device_cgroup_rules
# instead, where the machine refuses --privileged) has /sys and the cgroup hierarchies read-only:
# DOCKER_REMOUNT_SYS_RW=1 remounts them writable, as docker:dind does for the same variable.
remount_sys_rw() {
	mount -o remount,rw /sys
	mount -o remount,rw /sys/fs/cgroup 2>/dev/null || :
	grep ' /sys/fs/cgroup/[^ ]* cgroup ' /proc/self/mounts | while read -r _ path _ opts _; do
		umount "$path"
		mount -t cgroup -o "$(echo "$opts" | sed -e 's/^ro,/rw,/' -e 's/,ro,/,rw,/')" cgroup "$path"
	done
}

# Docker-in-Docker on a cgroup v2 host: dockerd may only enable controllers for child groups when
# no process sits in the root group, so this container's processes move to a group of their own.
nest_cgroup_v2() {
	[ -f /sys/fs/cgroup/cgroup.controllers ] || return 0
	mkdir -p /sys/fs/cgroup/init
	xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
	sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || :
}

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	if [ -n "$certdir" ]; then
		make_certs
		addr=${DIND_ADDR:-127.0.0.1:2376}
		set -- --host="tcp://$addr" --tlsverify --tlscacert "$certdir/server/ca.pem" \
			--tlscert "$certdir/server/cert.pem" --tlskey "$certdir/server/key.pem" "$@"
	else
		addr=${DIND_ADDR:-127.0.0.1:2375}
		set -- --host="tcp://$addr" "$@"
	fi
	case "$addr" in
	127.* | localhost:* | \[::1\]:*) ;;
	*)
		echo "dockerd-entrypoint: DIND_ADDR=$addr is not a loopback address; the test bed listens on 127.0.0.1 only" >&2
		exit 2
		;;
	esac
	[ -z "${DOCKER_REMOUNT_SYS_RW:-}" ] || remount_sys_rw
	nest_cgroup_v2
	find /run /var/run -maxdepth 1 -iname 'docker*.pid' -delete 2>/dev/null || :
	set -- dockerd --host=unix:///var/run/docker.sock --bridge=none --iptables=false --ip6tables=false \
		--ip-masq=false --ip-forward=false "$@"
fi
exec "$@"
