#!/usr/bin/env bash
# cloudsync quickstart (Debian 12, as root): a lab Samba AD DC on 127.0.0.1, the local tenant, the agent
# installed with `agent install --unattended` and one `agent sync-once`, then what arrived in the cloud next
# to what AD holds. Idempotent: a provisioned/running DC and a running tenant are reused; the agent is updated
# in place (same registration).
#   QUICKSTART_USERS=200   users seeded into the DC on first run
# State lives in .lab/ (dc/, tenant/, agent/etc/cloudsync/agent.toml, agent/var/lib/cloudsync/).
# The tenant is LEFT RUNNING so you can open the portal; the script prints the stop command.
set -euo pipefail
cd "$(dirname "$0")/.."
LAB=.lab DC=.lab/dc T=.lab/tenant AGENT=$PWD/.lab/agent USERS=${QUICKSTART_USERS:-200}
CONF=$AGENT/etc/cloudsync/agent.toml
GA=ga@contoso.onmicrosoft.com
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "Run as root: Samba's AD DC needs it." >&2; exit 1; }
command -v cargo >/dev/null || { echo "Install Rust first (https://rustup.rs)." >&2; exit 1; }
step "Packages (Samba AD DC, ldap-utils, curl)"
# Samba 4.21+ (the lab installs 4.22 from bookworm-backports; a machine with the stock 4.17 is upgraded).
samba_ok() {
  command -v samba >/dev/null && command -v ldapsearch >/dev/null &&
    samba --version | awk '{ split($2, v, "."); exit !(v[1] > 4 || (v[1] == 4 && v[2] >= 21)) }'
}
samba_ok || scripts/lab.sh install
command -v curl >/dev/null || apt-get install -y -q curl

step "Build"
cargo build --quiet
BIN=$PWD/target/debug/cloudsync

step "Lab DC in $DC (127.0.0.1)"
[ -f "$DC/lab.env" ] || LAB_IP=127.0.0.1 scripts/lab.sh provision "$DC"
scripts/lab.sh status "$DC" >/dev/null 2>&1 || scripts/lab.sh start "$DC"
if [ ! -f "$DC/.seeded" ]; then scripts/lab.sh seed "$DC" "$USERS"; touch "$DC/.seeded"; fi
eval "$(scripts/lab.sh env "$DC")"

step "Tenant in $T"
mkdir -p "$T" && chmod 700 "$T"
if [ ! -f "$T/admin-password" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' | sed 's/$/Aa1!/' >"$T/admin-password")
fi
if [ ! -f "$T/seed.toml" ]; then
  (umask 077; cat >"$T/seed.toml" <<SEED
tenant_id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
domain = "contoso.onmicrosoft.com"
[[users]]
user_principal_name = "$GA"
password = "$(cat "$T/admin-password")"
roles = ["GlobalAdministrator"]
SEED
  )
fi
if ! { [ -f "$T/pid" ] && kill -0 "$(cat "$T/pid")" 2>/dev/null; }; then
  rm -f "$T/address"
  nohup "$BIN" tenant serve --listen 127.0.0.1:0 --state "$T/state" --seed "$T/seed.toml" \
    --address-file "$T/address" --ca-out "$T/ca.pem" >"$T/tenant.log" 2>&1 &
  echo $! >"$T/pid"
  for _ in $(seq 100); do [ -s "$T/address" ] && break; sleep 0.1; done
fi
[ -s "$T/address" ] || { echo "The tenant did not start; see $T/tenant.log" >&2; exit 1; }
URL=$(cat "$T/address")
echo "tenant at $URL (pid $(cat "$T/pid"))"

# The agent is installed the way an admin installs it unattended (docs/install.md), everything under
# $AGENT: etc/cloudsync/agent.toml (0640), var/lib/cloudsync/ (0700: journal, credentials 0600). A second
# run updates it in place and keeps its registration. Secrets go in on stdin or a file, never on argv;
# the domain administrator's password is used for the domain check only and is not stored.
step "Install the agent (cloudsync agent install --unattended, into $AGENT)"
"$BIN" agent install --unattended --accept-license --prefix "$AGENT" \
  --tenant-url "$URL" --tenant-ca-file "$T/ca.pem" \
  --admin-upn "$GA" --admin-password-file "$T/admin-password" \
  --service-account "$AD_SVC_BIND_DN" --service-account-password-file <(printf '%s\n' "$AD_SVC_PASSWORD") \
  --domain "$AD_DNS_DOMAIN=$AD_LDAPS_URL" --dc-ca-file "$AD_CA_FILE" \
  --domain-admin "$AD_BIND_DN" --domain-admin-password-file - \
  --set "projection.scope.ous=[\"OU=SyncUsers,$AD_BASE_DN\", \"OU=Staff,$AD_BASE_DN\"]" \
  --set phs.enabled=true <<<"$AD_BIND_PASSWORD"

step "agent sync-once"
"$BIN" agent sync-once --config "$CONF"

step "Result"
TOKEN=$(tr -d '\n' <"$T/admin-password" | curl -sS --cacert "$T/ca.pem" -d grant_type=password \
  -d client_id=cloudsync-installer --data-urlencode "username=$GA" --data-urlencode password@- \
  --data-urlencode scope=https://graph.microsoft.com/.default \
  "$URL/contoso.onmicrosoft.com/oauth2/v2.0/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
graph() { curl -sS --cacert "$T/ca.pem" -H "Authorization: Bearer $TOKEN" "$@"; }
cloud_count() { # follows @odata.nextLink
  local next="$URL/v1.0/$1?\$select=id&\$top=999" n=0 page
  while [ -n "$next" ]; do
    page=$(graph "$next")
    n=$((n + $(grep -o '"id":' <<<"$page" | wc -l)))
    next=$(sed -n 's/.*"@odata.nextLink":"\([^"]*\)".*/\1/p' <<<"$page")
  done
  echo "$n"
}
ad_count() { # $1 = LDAP filter, over the OUs the install scoped (--set projection.scope.ous above)
  local n=0 ou
  for ou in "OU=SyncUsers,$AD_BASE_DN" "OU=Staff,$AD_BASE_DN"; do
    n=$((n + $(LDAPTLS_CACERT=$AD_CA_FILE ldapsearch -LLL -x -H "$AD_LDAPS_URL" -D "$AD_BIND_DN" \
      -w "$AD_BIND_PASSWORD" -E pr=500/noprompt -b "$ou" "$1" dn | grep -c '^dn:' || true)))
  done
  echo "$n"
}
printf '%-10s %8s %8s\n' kind AD cloud
printf '%-10s %8s %8s\n' users "$(ad_count '(&(objectCategory=person)(objectClass=user))')" "$(cloud_count users)"
printf '%-10s %8s %8s\n' groups "$(ad_count '(objectClass=group)')" "$(cloud_count groups)"
printf '%-10s %8s %8s\n' contacts "$(ad_count '(objectClass=contact)')" "$(cloud_count contacts)"
echo; echo "Two users as the cloud holds them:"
graph "$URL/v1.0/users?\$top=2&\$select=userPrincipalName,displayName,accountEnabled,onPremisesImmutableId,onPremisesSamAccountName"
echo; echo
echo "Password hash sync, proven by the tenant's sign-in check (PBKDF2 over the synced NT hash):"
signin() { curl -sS -o /dev/null -w '%{http_code}' --cacert "$T/ca.pem" -H 'Content-Type: application/json' \
  -d "{\"userPrincipalName\":\"user00001@corp.example.test\",\"password\":\"$1\"}" "$URL/contoso.onmicrosoft.com/signin"; }
echo "  user00001 with its AD password Init!Pass00001 -> HTTP $(signin 'Init!Pass00001')   (a wrong one -> HTTP $(signin 'Wrong!Pass1'))"
echo
step "cloudsync journal inspect $AGENT/var/lib/cloudsync/journal"
"$BIN" journal inspect "$AGENT/var/lib/cloudsync/journal"

step "Done"
echo "Portal:       $URL/   (the browser must trust $T/ca.pem, or accept the warning)"
echo "              sign in there as $GA with the password in $T/admin-password"
echo "              (10 wrong passwords lock the account from your address for 60 s: AADSTS50053)"
echo "Admin:        $GA, password in $T/admin-password"
echo "Keep syncing: $BIN agent run --config $CONF   (or install the printed units as root)"
echo "Uninstall:    $BIN agent uninstall --prefix $AGENT --admin-upn $GA --admin-password-file $T/admin-password"
echo "Stop:         kill $(cat "$T/pid"); scripts/lab.sh stop $DC"
