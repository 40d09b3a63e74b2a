#!/bin/bash
# wait_answers.sh DNS MODE IP NAME... : poll DNS (authoritative, no recursion) until every
# NAME's A answer excludes IP (MODE=exclude) or contains it (MODE=include); print the time
# (epoch seconds) it first held, then each name's answer. Gives up after 60 s (exit 1).
set -euo pipefail
dns=$1 mode=$2 ip=$3
shift 3
deadline=$(( $(date +%s) + 60 ))
while :; do
  ok=1
  answers=()
  for name in "$@"; do
    a=$(dig +short +norecurse +time=1 +tries=1 @"$dns" "$name" A | sort | tr '\n' ' ')
    answers+=("$name = $a")
    case " $a " in
      *" $ip "*) [ "$mode" = include ] || ok=0 ;;
      *) [ "$mode" = exclude ] || ok=0 ;;
    esac
  done
  if [ "$ok" = 1 ]; then
    date +%s.%N
    printf '%s\n' "${answers[@]}"
    exit 0
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "timeout"
    printf '%s\n' "${answers[@]}"
    exit 1
  fi
  sleep 0.1
done
