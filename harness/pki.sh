#!/usr/bin/env bash
# The lab's own certificate authority (the lab and the tests never use a public CA).
#   pki.sh DIR                    create DIR/ca.{crt,key} once
#   pki.sh DIR issue NAME DNS...  issue DIR/NAME.{crt,key} for the names, signed by the CA
set -euo pipefail
dir=$1; shift
mkdir -p "$dir"
if [ ! -s "$dir/ca.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=gomirror lab CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
[ "${1:-}" = issue ] || exit 0
name=$2; shift 2
[ -s "$dir/$name.crt" ] && exit 0
san=$(printf 'DNS:%s,' "$@"); san=${san%,}
openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 3650 -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") \
  -out "$dir/$name.crt" 2>/dev/null
rm -f "$dir/$name.csr"
chmod 0644 "$dir"/*.key
