#!/usr/bin/env bash
# lab.sh — a real Samba Active Directory domain controller on a loopback address, for cloudsync's
# integration tests, demos and benchmarks. Debian 12 (bookworm) with Samba 4.22 from
# bookworm-backports (gMSA needs 4.21+), run as root.
#
# Usage: scripts/lab.sh COMMAND [ARGS]
#
#   install            add bookworm-backports, apt-get Samba 4.22 (AD DC, ldb-tools) +
#                      ldap-utils from it; idempotent; never starts or enables a service
#   provision DIR      new domain in DIR (missing or empty): own CA + LDAPS cert, test password policy,
#                      sync service account with replication + writeback rights; DIR is left stopped
#   start DIR          start Samba in the background; returns when LDAP, LDAPS (CA-verified), KDC,
#                      RPC and SMB answer
#   stop DIR           SIGTERM the recorded pid; SIGKILL its process group after LAB_STOP_TIMEOUT
#   seed DIR N         (running DC) N users, groups, contacts, inetOrgPersons and an OU=Staff; see below
#   clone SRC DST      copy a stopped DIR to DST and rewrite its paths; LAB_IP=127.0.0.N re-homes it
#   status DIR         running or not, pid, address, highestCommittedUSN; exit 3 when stopped
#   env DIR            print `export AD_…='…'` lines: URLs, DNs, credentials, CA file, ldap_priv socket
#   help               this text
#
# Knobs (environment; provision records them in DIR/lab.env, later commands read them from there):
#   LAB_IP [127.0.0.1]            loopback address (127.0.0.1-127.0.0.64 are in the certificate)
#   LAB_REALM [CORP.EXAMPLE.TEST] LAB_DOMAIN [CORP] (NetBIOS)   LAB_HOST [dc1]
#   LAB_ADMIN_PASS [Passw0rd!Admin1]
#   LAB_SVC_USER [svc-sync]       LAB_SVC_PASS [Svc!Sync2024x]
#   LAB_BACKEND [tdb]             sam.ldb backend: tdb or mdb
#   LAB_STRICT [0]                1 = keep Samba's default `ldap server require strong auth` (no plain
#                                 ldap:// simple binds)
#   LAB_MODEL [prefork]           Samba process model for start: prefork or single
#   LAB_START_TIMEOUT [60]        LAB_STOP_TIMEOUT [20] (seconds)
#   LAB_APT_UPDATE [0]            1 = apt-get update before install (done anyway when there are no lists)
#   LAB_SAMBA_SUITE [bookworm-backports]  suite install takes Samba from (bookworm = the stock 4.17,
#                                 which has no gMSA: tests/gmsa_lab.rs then fails, the rest passes)
#
# Seed layout (BASE = DC=corp,DC=example,DC=test by default). Every seeded account's password is
# "Init!Pass" followed by the digits of its sAMAccountName: user00042 -> Init!Pass00042,
# staff007 -> Init!Pass007, inet02 -> Init!Pass02.
#   OU=SyncUsers,BASE                  user00001..userNNNNN (enabled; givenName, sn, displayName, mail,
#                                      employeeID, department Dept<i mod 5>), inet01..inet02
#                                      (inetOrgPerson), contact01..contact05 (contact, no password)
#   OU=SyncGroups,OU=SyncUsers,BASE    group0..group9 (global security; member: users with i mod 10 = k),
#                                      group-all (all N users), group-nested (group1, group2, contact01,
#                                      staff001), group-dist (universal distribution; contacts + user00001),
#                                      group-empty
#   OU=Staff,BASE                      staff001..staff010, group staff (all ten)
set -euo pipefail

die() { printf 'lab.sh: %s\n' "$*" >&2; exit 1; }
say() { printf 'lab.sh: %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# ---------------------------------------------------------------- settings

# Knobs from the environment, with defaults. A provisioned DIR overrides them with DIR/lab.env.
load_knobs() {
  IP=${LAB_IP:-127.0.0.1}
  REALM=${LAB_REALM:-CORP.EXAMPLE.TEST}
  DOMAIN=${LAB_DOMAIN:-CORP}
  DCHOST=${LAB_HOST:-dc1}
  ADMIN_PASS=${LAB_ADMIN_PASS:-Passw0rd!Admin1}
  SVC_USER=${LAB_SVC_USER:-svc-sync}
  SVC_PASS=${LAB_SVC_PASS:-Svc!Sync2024x}
  derive_names
}

derive_names() {
  REALM=${REALM^^}
  DNS_DOMAIN=${REALM,,}
  BASE_DN="DC=${DNS_DOMAIN//./,DC=}"
  ADMIN_UPN="Administrator@$DNS_DOMAIN"
  SVC_UPN="$SVC_USER@$DNS_DOMAIN"
}

# Resolve DIR to an absolute path of a provisioned lab and read its recorded settings.
open_dir() {
  [ -n "${1:-}" ] || die "missing DIR (see: lab.sh help)"
  [ -d "$1" ] || die "$1: no such directory"
  D=$(cd "$1" && pwd)
  if [ ! -f "$D/lab.env" ] || [ ! -f "$D/etc/smb.conf" ]; then
    die "$D is not a provisioned lab (no lab.env / etc/smb.conf)"
  fi
  # shellcheck source=/dev/null
  . "$D/lab.env"
  derive_names
}

write_lab_env() { # the settings later commands need; secrets, so 0600
  local v
  for v in "$IP" "$REALM" "$DOMAIN" "$DCHOST" "$ADMIN_PASS" "$SVC_USER" "$SVC_PASS"; do
    case $v in *"'"*) die "settings must not contain a single quote: $v" ;; esac
  done
  (umask 077; cat > "$D/lab.env" <<EOF
IP='$IP'
REALM='$REALM'
DOMAIN='$DOMAIN'
DCHOST='$DCHOST'
ADMIN_PASS='$ADMIN_PASS'
SVC_USER='$SVC_USER'
SVC_PASS='$SVC_PASS'
EOF
  )
}

# The pid file names a live Samba master (checked by name, so a recycled pid is never signalled).
is_running() {
  local pid
  [ -f "$D/samba.pid" ] || return 1
  pid=$(cat "$D/samba.pid")
  [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = samba ] && alive "$pid"
}

# Alive = exists and is not a zombie: in containers whose init reaps slowly (measured: ~1.2 s),
# a dead Samba lingers as a zombie that `kill -0` would still report.
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]; }
# shellcheck disable=SC2009 # pgrep cannot leave out zombies
group_alive() { ps -o stat= -g "$1" 2>/dev/null | grep -qv '^Z'; }

# The lab root smb.conf was written for (the parent of its 'private dir').
conf_root() { sed -n 's#^[[:space:]]*private dir[[:space:]]*=[[:space:]]*\(.*\)/private[[:space:]]*$#\1#p' "$D/etc/smb.conf"; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# LDAP client tools as Administrator over LDAPS, verifying the lab CA.
ldap_admin() {
  local tool=$1; shift
  LDAPTLS_CACERT="$D/tls/ca.pem" LDAPTLS_REQCERT=demand \
    "$tool" -x -H "ldaps://$IP" -D "$ADMIN_UPN" -w "$ADMIN_PASS" -o nettimeout=10 "$@"
}

# ---------------------------------------------------------------- install

# Samba 4.22 from bookworm-backports: the first Debian 12 Samba whose AD DC serves gMSA passwords
# (msDS-ManagedPassword, 4.21+) and creates a usable KDS root key when it provisions a domain.
BACKPORTS_LIST=/etc/apt/sources.list.d/cloudsync-lab-bookworm-backports.sources
LAB_PKGS=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind
  python3-samba samba-common samba-common-bin libldb2 python3-ldb ldb-tools ldap-utils openssl faketime)
# libfaketime (package faketime, Debian main): `start` runs Samba under it when LAB_FAKETIME_FILE is set.
FAKETIME_LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1

# The suite the Samba packages come from: LAB_SAMBA_SUITE, default bookworm-backports.
samba_suite() { printf '%s' "${LAB_SAMBA_SUITE:-bookworm-backports}"; }

# Adds bookworm-backports in its own file (deb822) unless an apt source already names it.
# Exit 0 = the file was written (apt-get update needed), 1 = nothing to do.
add_backports() {
  local want
  want=$'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg'
  [ "$(cat "$BACKPORTS_LIST" 2>/dev/null)" != "$want" ] || return 1
  if [ ! -e "$BACKPORTS_LIST" ] &&
    grep -rqs --include='*.list' --include='*.sources' '^[^#]*bookworm-backports' \
      /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 1
  fi
  printf '%s\n' "$want" > "$BACKPORTS_LIST"
}

# The installed Samba's major.minor as an integer (4.22 -> 422), 0 when none.
samba_level() {
  samba --version 2>/dev/null | sed -n 's/^Version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p' |
    awk '{ v = $1 * 100 + $2 } END { printf "%d", v }'
}

cmd_install() {
  local t0 made_policy=0 suite update=0
  t0=$(now)
  [ "$(id -u)" = 0 ] || die "install must run as root"
  export DEBIAN_FRONTEND=noninteractive
  suite=$(samba_suite)
  # policy-rc.d exit 101 tells the package scripts not to start smbd/nmbd/samba-ad-dc, which would
  # grab 88/389/445/636 on every interface.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  if [ "$suite" = bookworm-backports ] && add_backports; then update=1; fi
  if [ "${LAB_APT_UPDATE:-0}" = 1 ] || ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    update=1
  fi
  if [ "$suite" = bookworm-backports ] && ! compgen -G '/var/lib/apt/lists/*bookworm-backports*_Packages*' >/dev/null; then
    update=1
  fi
  [ "$update" = 0 ] || apt-get update -qq
  # -t: every package of the Samba family from one suite (libldb, python3-ldb, ldb-tools must match
  # the samba build exactly); --no-install-recommends keeps cups, krb5-user etc. out.
  apt-get install -y -q --no-install-recommends -t "$suite" -o Dpkg::Options::=--force-confold \
    "${LAB_PKGS[@]}"
  [ "$made_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d
  if [ -d /run/systemd/system ]; then # a systemd host: keep the distribution's services off for good
    systemctl disable --now samba-ad-dc smbd nmbd winbind >/dev/null 2>&1 || true
    systemctl mask samba-ad-dc smbd nmbd >/dev/null 2>&1 || true
  fi
  if [ "$suite" = bookworm-backports ] && [ "$(samba_level)" -lt 421 ]; then
    die "installed $(samba --version), but the lab needs Samba 4.21+ (gMSA) from bookworm-backports"
  fi
  say "installed in $(since "$t0")s: $(samba --version)"
}

# ---------------------------------------------------------------- provision

# A private CA and a server certificate that rustls/webpki and libldap accept on every lab address.
make_certs() {
  local T=$D/tls sans
  mkdir -p "$T"
  chmod 700 "$T"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=cloudsync lab/CN=cloudsync lab CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=cloudsync lab/CN=$DCHOST.$DNS_DOMAIN" \
    -keyout "$T/key.pem" -out "$T/req.csr" 2>/dev/null
  # IP SANs 127.0.0.1-64 so clones re-homed onto any lab address keep verifying. libldap checks
  # ldaps://localhost against the machine's hostname, hence that name too.
  sans="DNS:$DCHOST.$DNS_DOMAIN,DNS:$DCHOST,DNS:localhost,DNS:$(hostname)"
  if [ "$(hostname -f 2>/dev/null || hostname)" != "$(hostname)" ]; then sans+=",DNS:$(hostname -f)"; fi
  sans+=$(seq -f ',IP:127.0.0.%g' 1 64 | tr -d '\n')
  cat > "$T/leaf.ext" <<EOF
subjectAltName=$sans
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
EOF
  openssl x509 -req -days 3650 -in "$T/req.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
    -extfile "$T/leaf.ext" -out "$T/cert.pem" 2>/dev/null
  chmod 600 "$T/ca.key" "$T/key.pem"
  rm -f "$T/req.csr"
}

cmd_provision() {
  local t0 strong=no sid
  [ -n "${1:-}" ] || die "usage: lab.sh provision DIR"
  mkdir -p "$1"
  D=$(cd "$1" && pwd)
  [ -z "$(ls -A "$D")" ] || die "$D is not empty"
  load_knobs
  case ${LAB_BACKEND:-tdb} in tdb | mdb) ;; *) die "LAB_BACKEND must be tdb or mdb" ;; esac
  [ "${LAB_STRICT:-0}" = 1 ] && strong=yes
  t0=$(now)
  mkdir -p "$D/etc" "$D/run"
  write_lab_env
  make_certs
  : > "$D/etc/empty.conf" # keeps provision from reading /etc/samba/smb.conf
  # Everything per-DIR (pid, sockets, logs) so several DCs run side by side; loopback only; no NetBIOS.
  samba-tool domain provision -s "$D/etc/empty.conf" --targetdir="$D" \
    --realm="$REALM" --domain="$DOMAIN" --host-name="$DCHOST" --host-ip="$IP" \
    --server-role=dc --dns-backend=NONE --use-rfc2307 --adminpass="$ADMIN_PASS" \
    --backend-store="${LAB_BACKEND:-tdb}" \
    --option="netbios name=${DCHOST^^}" \
    --option="interfaces=$IP/8" --option="bind interfaces only=yes" \
    --option="server services=s3fs, rpc, ldap, cldap, kdc, drepl, winbindd, ntp_signd, kcc" \
    --option="disable netbios=yes" --option="smb ports=445" --option="ldb:nosync=true" \
    --option="pid directory=$D/run" --option="ncalrpc dir=$D/run/ncalrpc" \
    --option="winbindd socket directory=$D/run/winbindd" \
    --option="ntp signd socket directory=$D/run/ntp_signd" \
    --option="log file=$D/log.%m" --option="max log size=10000" \
    --option="tls enabled=yes" --option="tls keyfile=$D/tls/key.pem" \
    --option="tls certfile=$D/tls/cert.pem" --option="tls cafile=$D/tls/ca.pem" \
    > "$D/provision.log" 2>&1 || { tail -n 30 "$D/provision.log" >&2; die "samba-tool domain provision failed"; }
  rm -f "$D/etc/empty.conf"
  # provision drops this option silently when given with --option, so put it into [global] directly.
  sed -i "s/^\[global\]\$/[global]\n\tldap server require strong auth = $strong/" "$D/etc/smb.conf"
  # Test-friendly policy: no history or minimum age (tests change passwords back and forth), lockout
  # after 5 bad attempts so unlock writeback can be exercised.
  samba-tool domain passwordsettings set -s "$D/etc/smb.conf" --complexity=on --history-length=0 \
    --min-pwd-age=0 --max-pwd-age=0 --account-lockout-threshold=5 \
    --account-lockout-duration=30 --reset-account-lockout-after=30 >/dev/null
  grant_svc_rights
  say "provisioned $REALM ($DOMAIN) in $D on $IP in $(since "$t0")s"
}

# The sync service account, like the product's provAgentgMSA/MSOL_ account:
#  - on the domain NC: DS-Replication-Get-Changes and -Get-Changes-All (DirSync without
#    OBJECT_SECURITY, DRSUAPI GetNCChanges with secrets);
#  - inherited by user objects: Reset-Password, and read/write lockoutTime and pwdLastSet
#    (password writeback, unlock, "must change at next logon").
grant_svc_rights() {
  local sid user_class=bf967aba-0de6-11d0-a285-00aa003049e2
  local get_changes=1131f6aa-9c07-11d1-f79f-00c04fc2dcd2 get_changes_all=1131f6ad-9c07-11d1-f79f-00c04fc2dcd2
  local reset_password=00299570-246d-11d0-a768-00aa006e0529
  local lockout_time=28630ebf-41d5-11d1-a9c1-0000f80367c1 pwd_last_set=bf967a0a-0de6-11d0-a285-00aa003049e2
  samba-tool user create "$SVC_USER" "$SVC_PASS" -s "$D/etc/smb.conf" \
    --description="cloudsync service account (lab)" >/dev/null
  sid=$(ldbsearch -H "$D/private/sam.ldb" -b "$BASE_DN" "(sAMAccountName=$SVC_USER)" objectSid \
    | sed -n 's/^objectSid: //p')
  [[ $sid == S-1-5-21-* ]] || die "could not read the SID of $SVC_USER (got '$sid')"
  samba-tool dsacl set -s "$D/etc/smb.conf" --objectdn="$BASE_DN" --sddl="\
(OA;;CR;$get_changes;;$sid)(OA;;CR;$get_changes_all;;$sid)\
(OA;CIIO;CR;$reset_password;$user_class;$sid)\
(OA;CIIO;RPWP;$lockout_time;$user_class;$sid)(OA;CIIO;RPWP;$pwd_last_set;$user_class;$sid)" >/dev/null
  grant_deleted_objects "$sid"
}

# The SDDL of CN=Deleted Objects in the stopped DIR (LDIF lines unfolded).
deleted_objects_sd() {
  ldbsearch -H "$D/private/sam.ldb" --controls=show_deleted:1 -s base -b "CN=Deleted Objects,$BASE_DN" \
    nTSecurityDescriptor |
    awk '/^ / { line = line substr($0, 2); next } { if (line != "") print line; line = $0 }
         END { if (line != "") print line }' | sed -n 's/^nTSecurityDescriptor: //p'
}

# Samba 4.17 returns a tombstone in DirSync only to accounts that may list and read
# CN=Deleted Objects (AD: the replication right is enough), so svc-sync gets RPLC there, as BUILTIN\
# Administrators has. samba-tool dsacl cannot address that container (it is itself deleted), hence
# ldbmodify with Show Deleted on the stopped DIR.
grant_deleted_objects() {
  local dn="CN=Deleted Objects,$BASE_DN" ace="(A;;RPLC;;;$1)" sd
  sd=$(deleted_objects_sd)
  [[ $sd == O:*D:* ]] || die "could not read the security descriptor of $dn (got '$sd')"
  if [[ $sd == *S:* ]]; then sd=${sd/S:/$ace"S:"}; else sd+=$ace; fi # the new ACE ends the DACL
  printf 'dn: %s\nchangetype: modify\nreplace: nTSecurityDescriptor\nnTSecurityDescriptor: %s\n' "$dn" "$sd" |
    ldbmodify -H "$D/private/sam.ldb" --controls=show_deleted:1 >/dev/null ||
    die "could not grant $SVC_USER read/list on $dn"
  # Samba 4.17 prints the rights back as RPLC, 4.22 as LCRP (its SDDL writer orders them differently).
  sd=$(deleted_objects_sd)
  [[ $sd == *"$ace"* || $sd == *"(A;;LCRP;;;$1)"* ]] || die "the grant on $dn did not stick (now: $sd)"
}

# ---------------------------------------------------------------- start / stop / status

cmd_start() {
  local t0 pid deadline p
  open_dir "${1:-}"
  # A DIR copied with plain cp still names its original place; Samba would serve that DB instead.
  [ "$(conf_root)" = "$D" ] ||
    die "$D/etc/smb.conf serves $(conf_root), not $D (copied with cp? use lab.sh clone SRC DST)"
  ! is_running || die "$D already runs (pid $(cat "$D/samba.pid"))"
  for p in 389 636 88 135 445 464 3268 3269; do
    ! port_open "$IP" "$p" || die "$IP:$p is already in use (a stale DC? try: lab.sh stop DIR of that DC)"
  done
  t0=$(now)
  # LAB_FAKETIME_FILE: Samba's wall clock runs at the offset written in that file (libfaketime, the
  # file re-read every second; its monotonic clock is left alone), to age gMSA passwords in a test.
  local -a pre=()
  if [ -n "${LAB_FAKETIME_FILE:-}" ]; then
    [ -r "$FAKETIME_LIB" ] || die "LAB_FAKETIME_FILE needs libfaketime ($FAKETIME_LIB): lab.sh install"
    pre=(env "LD_PRELOAD=$FAKETIME_LIB" "FAKETIME_TIMESTAMP_FILE=$LAB_FAKETIME_FILE"
      FAKETIME_CACHE_DURATION=1 FAKETIME_DONT_FAKE_MONOTONIC=1)
  fi
  # setsid: Samba gets its own process group (pgid = pid), which stop can kill as a whole.
  setsid "${pre[@]}" samba -F --no-process-group -M "${LAB_MODEL:-prefork}" -s "$D/etc/smb.conf" --debug-stdout -d1 \
    > "$D/samba.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$D/samba.pid"
  # bash's integer SECONDS, not awk: awk prints large floats as %.6g (1.7956e+09), which once made this
  # deadline lie in the past and every start fail "not ready" at once.
  deadline=$((SECONDS + ${LAB_START_TIMEOUT:-60}))
  until ready; do
    if ! alive "$pid"; then
      rm -f "$D/samba.pid"
      tail -n 20 "$D/samba.log" >&2
      die "samba exited during startup (log: $D/samba.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -n 20 "$D/samba.log" >&2
      die "not ready after ${LAB_START_TIMEOUT:-60}s (still running as pid $pid; log: $D/samba.log)"
    fi
    sleep 0.1
  done
  say "started pid $pid on $IP in $(since "$t0")s (ldaps://$IP, CA $D/tls/ca.pem)"
}

# LDAP answers the rootDSE, LDAPS verifies against the lab CA, and KDC, RPC and SMB accept connections.
ready() {
  ldapsearch -x -H "ldap://$IP" -o nettimeout=2 -s base -b '' highestCommittedUSN >/dev/null 2>&1 &&
    LDAPTLS_CACERT="$D/tls/ca.pem" LDAPTLS_REQCERT=demand \
      ldapsearch -x -H "ldaps://$IP" -o nettimeout=2 -s base -b '' dsServiceName >/dev/null 2>&1 &&
    port_open "$IP" 88 && port_open "$IP" 135 && port_open "$IP" 445
}

cmd_stop() {
  local t0 pid i
  open_dir "${1:-}"
  if ! is_running; then
    rm -f "$D/samba.pid"
    say "$D is not running"
    return 0
  fi
  t0=$(now)
  pid=$(cat "$D/samba.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < ${LAB_STOP_TIMEOUT:-20} * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  # The children normally leave with the master; anything left in its process group goes now.
  kill -KILL -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    group_alive "$pid" || break
    sleep 0.05
  done
  ! group_alive "$pid" || die "processes of group $pid survived SIGKILL"
  rm -f "$D/samba.pid"
  say "stopped pid $pid in $(since "$t0")s"
}

cmd_status() {
  local usn
  open_dir "${1:-}"
  if is_running; then
    usn=$(ldapsearch -x -H "ldap://$IP" -o nettimeout=2 -LLL -s base -b '' highestCommittedUSN 2>/dev/null |
      sed -n 's/^highestCommittedUSN: //p')
    say "$D: running, pid $(cat "$D/samba.pid"), $IP, realm $REALM, highestCommittedUSN ${usn:-?}"
  else
    say "$D: stopped ($IP, realm $REALM)"
    return 3
  fi
}

# ---------------------------------------------------------------- seed

cmd_seed() {
  local t0 n
  open_dir "${1:-}"
  n=${2:-}
  if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 99999 ]; then
    die "usage: lab.sh seed DIR N (1..99999)"
  fi
  is_running || die "$D is not running (lab.sh start $D first)"
  [ ! -e "$D/seed.done" ] || die "$D is already seeded ($(cat "$D/seed.done"))"
  t0=$(now)
  (umask 077; write_seed_ldif "$n" > "$D/seed.ldif")
  ldap_admin ldapadd -f "$D/seed.ldif" > "$D/seed.log" 2>&1 ||
    { tail -n 8 "$D/seed.log" >&2; die "seeding failed (log: $D/seed.log)"; }
  rm -f "$D/seed.ldif" # it holds passwords
  echo "users=$n" > "$D/seed.done"
  say "seeded $n users + groups, contacts, inetOrgPersons and OU=Staff in $(since "$t0")s"
}

# The seed LDIF on stdout, parents before children, members after the objects they name.
write_seed_ldif() {
  /usr/bin/python3 - "$1" "$BASE_DN" "$DNS_DOMAIN" <<'PY'
import base64, sys

n, base, dns = int(sys.argv[1]), sys.argv[2], sys.argv[3]
users, staff_ou = f"OU=SyncUsers,{base}", f"OU=Staff,{base}"
groups = f"OU=SyncGroups,{users}"

def entry(dn, *lines):
    print(f"dn: {dn}")
    for line in lines:
        print(line)
    print()

def unicode_pwd(pw):
    return base64.b64encode(f'"{pw}"'.encode("utf-16-le")).decode()

def account(dn, sam, digits, given, sn, *extra, classes=("user",)):
    entry(dn, *(f"objectClass: {c}" for c in classes), f"sAMAccountName: {sam}",
          f"userPrincipalName: {sam}@{dns}", f"givenName: {given}", f"sn: {sn}",
          f"displayName: {given} {sn}", f"mail: {sam}@{dns}", *extra,
          f"unicodePwd:: {unicode_pwd('Init!Pass' + digits)}", "userAccountControl: 512")

def group(name, ou, members, group_type=-2147483646):
    entry(f"CN={name},{ou}", "objectClass: group", f"sAMAccountName: {name}",
          f"groupType: {group_type}", f"description: cloudsync lab group {name}",
          *(f"member: {m}" for m in members))

for ou in (users, groups, staff_ou):
    entry(ou, "objectClass: organizationalUnit")
user_dn = [f"CN=user{i:05d},{users}" for i in range(1, n + 1)]
for i in range(1, n + 1):
    account(user_dn[i - 1], f"user{i:05d}", f"{i:05d}", "Test", f"User{i:05d}",
            f"employeeID: E{i:05d}", f"department: Dept{i % 5}")
for k in (1, 2):
    account(f"CN=inet{k:02d},{users}", f"inet{k:02d}", f"{k:02d}", "Inet", f"Person{k:02d}",
            f"employeeNumber: I{k:02d}", classes=("inetOrgPerson",))
contact_dn = [f"CN=contact{k:02d},{users}" for k in range(1, 6)]
for k, dn in enumerate(contact_dn, 1):
    entry(dn, "objectClass: contact", "givenName: Partner", f"sn: Contact{k:02d}",
          f"displayName: Partner Contact{k:02d}", f"mail: contact{k:02d}@partner.example")
staff_dn = [f"CN=staff{k:03d},{staff_ou}" for k in range(1, 11)]
for k, dn in enumerate(staff_dn, 1):
    account(dn, f"staff{k:03d}", f"{k:03d}", "Staff", f"Member{k:03d}", "department: Staff")
group("staff", staff_ou, staff_dn)
for k in range(10):
    group(f"group{k}", groups, [dn for i, dn in enumerate(user_dn, 1) if i % 10 == k])
group("group-all", groups, user_dn)
group("group-nested", groups, [f"CN=group1,{groups}", f"CN=group2,{groups}", contact_dn[0], staff_dn[0]])
group("group-dist", groups, contact_dn + user_dn[:1], group_type=8)
group("group-empty", groups, [])
PY
}

# ---------------------------------------------------------------- clone / env

cmd_clone() {
  local t0 S old
  [ -n "${2:-}" ] || die "usage: lab.sh clone SRC DST"
  open_dir "$1"
  S=$D
  ! is_running || die "$S is running; stop it first (its tdb files are not crash-consistent while live)"
  [ ! -e "$2" ] || die "$2 already exists"
  t0=$(now)
  mkdir -p "$(dirname "$2")"
  cp -a "$S" "$2"
  D=$(cd "$2" && pwd)
  rm -rf "$D/samba.pid" "$D/samba.log" "$D"/log.* "$D/run"
  mkdir -p "$D/run"
  # The only absolute paths live in smb.conf (partition links in sam.ldb are relative). Re-home from
  # the root smb.conf names, not from SRC: a SRC copied with plain cp (e.g. a target/ directory copied
  # between checkouts) still names its original place, and a clone of it would run on that DB.
  old=$(conf_root)
  [ -n "$old" ] || die "$D/etc/smb.conf names no 'private dir'"
  sed -i "s#$old/#$D/#g; s#$old\$#$D#" "$D/etc/smb.conf"
  if [ -n "${LAB_IP:-}" ]; then
    [[ $LAB_IP =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "LAB_IP must be a loopback address, got $LAB_IP"
    IP=$LAB_IP
    sed -i "s#^\(\s*interfaces\s*=\s*\).*#\1$IP/8#" "$D/etc/smb.conf"
    write_lab_env
  fi
  say "cloned $S to $D ($IP) in $(since "$t0")s"
}

cmd_env() {
  open_dir "${1:-}"
  cat <<EOF
export AD_DIR='$D'
export AD_IP='$IP'
export AD_LDAP_URL='ldap://$IP:389'
export AD_LDAPS_URL='ldaps://$IP:636'
export AD_BASE_DN='$BASE_DN'
export AD_REALM='$REALM'
export AD_DNS_DOMAIN='$DNS_DOMAIN'
export AD_DOMAIN='$DOMAIN'
export AD_HOST='$DCHOST.$DNS_DOMAIN'
export AD_BIND_DN='$ADMIN_UPN'
export AD_BIND_PASSWORD='$ADMIN_PASS'
export AD_SVC_BIND_DN='$SVC_UPN'
export AD_SVC_PASSWORD='$SVC_PASS'
export AD_CA_FILE='$D/tls/ca.pem'
export AD_PRIV_LDAPI='$D/private/ldap_priv/ldapi'
export AD_SMB_CONF='$D/etc/smb.conf'
EOF
}

# ---------------------------------------------------------------- main

cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
  install) cmd_install ;;
  provision) cmd_provision "$@" ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  seed) cmd_seed "$@" ;;
  clone) cmd_clone "$@" ;;
  status) cmd_status "$@" ;;
  env) cmd_env "$@" ;;
  help | -h | --help) usage ;;
  "") usage; exit 2 ;;
  *) usage >&2; die "unknown command: $cmd" ;;
esac
