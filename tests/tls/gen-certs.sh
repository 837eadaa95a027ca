#!/bin/sh
# Generates the certificates the TLS tests use, into OUTDIR (created if
# needed). Everything is made fresh on each run; nothing here is a secret.
#
#   ca.pem ca.key          test CA ("cutover test CA")
#   ca2.pem ca2.key        an unrelated CA, for wrong-CA tests
#   int.pem int.key        intermediate CA signed by ca
#   a.pem a.key            leaf: DNS a.test, *.wild.test (EC P-256)
#   a-chain.pem            leaf for a.test, *.wild.test signed by int, with
#                          int.pem appended; its key is a.key
#   b.pem b.key            leaf: DNS b.test (RSA 2048)
#   cn.pem cn.key          leaf with CN=cn.test and no subjectAltName
#   mismatch.pem           leaf for mismatch.test (RSA) whose key is thrown
#                          away: pair it with b.key for a same-type mismatch
#   expired.pem expired.key   valid 2020-01-01 .. 2024-01-01 00:00:00 UTC
#   notyet.pem notyet.key     valid from 2090-01-01 00:00:00 UTC
#   up.pem up.key          upstream server: IP 127.0.0.1, DNS up.test
#   evil.pem evil.key      leaf for DNS evil.example only (no IP), signed by
#                          ca: trusted chain, wrong name for any test server
#
# Usage: gen-certs.sh OUTDIR
# Needs only a POSIX shell and the openssl(1) command (1.1.1 or 3.x).
# Past and future validity dates go through "openssl ca", because
# "openssl x509 -not_before/-not_after" only exists from OpenSSL 3.4 on.

set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
mkdir -p "$out"
cd "$out"

OPENSSL=${OPENSSL:-openssl}
work=gen.tmp
rm -rf "$work"
mkdir "$work"
trap 'rm -rf "$work"' EXIT

# One configuration for every command, so that the system openssl.cnf and
# its default extensions play no part.
cat >"$work/openssl.cnf" <<'CNF'
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ int_ext ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ a_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:a.test, DNS:*.wild.test
[ b_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:b.test
[ cn_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ mismatch_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:mismatch.test
[ up_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, DNS:up.test
[ evil_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:evil.example
[ dated_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:a.test
[ ca ]
default_ca = test_ca
[ test_ca ]
database = gen.tmp/index.txt
new_certs_dir = gen.tmp
serial = gen.tmp/serial
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ policy_any ]
commonName = supplied
CNF
cnf=$work/openssl.cnf
: >"$work/index.txt"
echo 1000 >"$work/serial"

eckey() {
	"$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out "$1" 2>/dev/null
}

rsakey() {
	"$OPENSSL" genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	    -out "$1" 2>/dev/null
}

# selfsign NAME CN: a CA certificate NAME.pem for key NAME.key.
selfsign() {
	"$OPENSSL" req -config "$cnf" -new -x509 -key "$1.key" -subj "/CN=$2" \
	    -days 3650 -sha256 -extensions ca_ext -set_serial "$3" -out "$1.pem"
}

# sign NAME CN SECTION CA SERIAL [OUT]: a certificate for NAME.key signed by
# CA.pem/CA.key with the extensions of SECTION, valid from now for 825 days.
sign() {
	"$OPENSSL" req -config "$cnf" -new -key "$1.key" -subj "/CN=$2" \
	    -out "$work/$1.csr"
	"$OPENSSL" x509 -req -in "$work/$1.csr" -CA "$4.pem" -CAkey "$4.key" \
	    -set_serial "$5" -days 825 -sha256 -extfile "$cnf" -extensions "$3" \
	    -out "${6:-$1.pem}" 2>/dev/null
}

# dated NAME START END: a leaf for a.test signed by ca with fixed dates
# (YYYYMMDDHHMMSSZ).
dated() {
	eckey "$1.key"
	"$OPENSSL" req -config "$cnf" -new -key "$1.key" -subj "/CN=a.test" \
	    -out "$work/$1.csr"
	"$OPENSSL" ca -config "$cnf" -batch -notext -startdate "$2" \
	    -enddate "$3" -extensions dated_ext -in "$work/$1.csr" \
	    -out "$1.pem" 2>/dev/null
}

eckey ca.key
selfsign ca "cutover test CA" 1
eckey ca2.key
selfsign ca2 "cutover other CA" 2
eckey int.key
sign int "cutover test intermediate" int_ext ca 3

eckey a.key
sign a a.test a_ext ca 10
sign a a.test a_ext int 11 "$work/a-int.pem"
cat "$work/a-int.pem" int.pem >a-chain.pem

rsakey b.key
sign b b.test b_ext ca 12

eckey cn.key
sign cn cn.test cn_ext ca 13

rsakey "$work/mismatch.key"
"$OPENSSL" req -config "$cnf" -new -key "$work/mismatch.key" \
    -subj "/CN=mismatch.test" -out "$work/mismatch.csr"
"$OPENSSL" x509 -req -in "$work/mismatch.csr" -CA ca.pem -CAkey ca.key \
    -set_serial 14 -days 825 -sha256 -extfile "$cnf" \
    -extensions mismatch_ext -out mismatch.pem 2>/dev/null

eckey up.key
sign up up.test up_ext ca 15

eckey evil.key
sign evil evil.example evil_ext ca 16

dated expired 20200101000000Z 20240101000000Z
dated notyet 20900101000000Z 20910101000000Z

chmod 600 ./*.key
