#!/usr/bin/env bash
# Walks payments through a running deployment, as a merchant and a payer would: create
# (with an Idempotency-Key), pay in the sandbox, see it paid, refund part and then the
# rest, see it refunded. Every step is retried with the same key while the deployment
# answers 502/503 or nothing (a node or the database going away), for up to RETRY_SECS,
# so the run also checks that a failure costs nothing but time. Prints one line per
# payment and a tally; exits 1 if any payment did not end refunded with its amount.
#
#   BASE=http://localhost:8080 N=20 deploy/smoke.sh      # the compose load balancer
#
# Needs curl and jq. Uses the sandbox (the `alipay` channel of the demo config.toml).
set -uo pipefail

BASE=${BASE:-http://localhost:8080}
KEY=${KEY:-sk_test_paygate_demo}
N=${N:-10}
RUN=${RUN:-smoke-$(date +%s)-$$}
RETRY_SECS=${RETRY_SECS:-60}
AMOUNT=1234

# call METHOD PATH [BODY [IDEMPOTENCY-KEY]]: the answer's status in $STATUS, its body in
# $BODY. Retries 502/503/504/000 (no answer) until RETRY_SECS have passed.
call() {
    local method=$1 path=$2 body=${3:-} key=${4:-} deadline=$((SECONDS + RETRY_SECS))
    local -a args=(-s -o /tmp/smoke.$$ -w '%{http_code}' -X "$method" "$BASE$path"
        -H "Authorization: Bearer $KEY" --max-time 10)
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
    [ -n "$key" ] && args+=(-H "Idempotency-Key: $key")
    while :; do
        STATUS=$(curl "${args[@]}" 2>/dev/null || true)
        case $STATUS in
        502 | 503 | 504 | 000 | "")
            ((SECONDS < deadline)) || break
            RETRIES=$((RETRIES + 1))
            sleep 0.5
            ;;
        *) break ;;
        esac
    done
    BODY=$(cat /tmp/smoke.$$ 2>/dev/null)
    rm -f /tmp/smoke.$$
}

# wait_status ID WANTED: polls the order until it has the wanted status (10 s at most).
wait_status() {
    local id=$1 wanted=$2 deadline=$((SECONDS + 10)) got=""
    while ((SECONDS < deadline)); do
        call GET "/v1/orders/$id"
        got=$(jq -r '.status // empty' <<<"$BODY")
        [ "$got" = "$wanted" ] && return 0
        sleep 0.2
    done
    echo "order $id: status ${got:-?}, wanted $wanted" >&2
    return 1
}

one_payment() {
    local no="$RUN-$1" id
    call POST /v1/orders "{\"merchant_order_no\":\"$no\",\"amount\":$AMOUNT,
        \"currency\":\"CNY\",\"channel\":\"alipay\",\"method\":\"native_qr\",
        \"subject\":\"smoke\"}" "order-$no"
    id=$(jq -r '.id // empty' <<<"$BODY")
    [ "$STATUS" = 201 ] && [ -n "$id" ] || { echo "create $no: $STATUS $BODY" >&2; return 1; }
    call POST "/sandbox/pay/$id"
    [ "$STATUS" = 200 ] || { echo "pay $id: $STATUS" >&2; return 1; }
    wait_status "$id" paid || return 1
    call POST "/v1/orders/$id/refunds" "{\"merchant_refund_no\":\"$no-R1\",\"amount\":234}" \
        "refund-$no-R1"
    [ "$STATUS" = 201 ] || { echo "refund R1 of $id: $STATUS" >&2; return 1; }
    call POST "/v1/orders/$id/refunds" "{\"merchant_refund_no\":\"$no-R2\",\"amount\":$((AMOUNT - 234))}" \
        "refund-$no-R2"
    [ "$STATUS" = 201 ] || { echo "refund R2 of $id: $STATUS" >&2; return 1; }
    wait_status "$id" refunded || return 1
    call GET "/v1/orders/$id"
    [ "$(jq -r .amount_refunded <<<"$BODY")" = "$AMOUNT" ] ||
        { echo "order $id: refunded $(jq -r .amount_refunded <<<"$BODY")" >&2; return 1; }
    echo "$no $id refunded"
}

ok=0 failed=0 RETRIES=0 STATUS="" BODY=""
for i in $(seq 1 "$N"); do
    if one_payment "$i"; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
done
echo "smoke: $ok of $N payments paid and refunded, $failed failed, $RETRIES retried calls"
[ "$failed" = 0 ]
