#!/usr/bin/env bash
# The lab's own certificate authority (the lab and the tests never use a public CA).
#   pki.sh DIR                    create DIR/ca.{crt,key} once
#   pki.sh DIR issue NAME DNS...  issue DIR/NAME.{crt,key} for the names, signed by the CA;
#                                 again only when the names differ from the last issue
#                                 (kept in DIR/NAME.names); prints "issued NAME" when it did
set -euo pipefail
dir=$1; shift
mkdir -p "$dir"
if [ ! -s "$dir/ca.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=gomirror lab CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
fi
[ "${1:-}" = issue ] || exit 0
name=$2; shift 2
[ $# -gt 0 ] || { echo "pki.sh: issue $name: no DNS names given" >&2; exit 2; }
names=$(printf '%s\n' "$@")
if [ -s "$dir/$name.crt" ] && [ "$(cat "$dir/$name.names" 2>/dev/null)" = "$names" ]; then
  exit 0
fi
san=$(printf 'DNS:%s,' "$@"); san=${san%,}
openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 3650 -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") \
  -out "$dir/$name.crt" 2>/dev/null
rm -f "$dir/$name.csr"
printf '%s\n' "$names" > "$dir/$name.names"
chmod 0644 "$dir"/*.key
echo "issued $name"
