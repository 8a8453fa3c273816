# Sourced by scripts/backup.sh and scripts/restore.sh: keeps a database password off every command
# line. `private_url URL DIR` sets `db_url` to URL without its password (user:password@ and any
# password= parameter) and, when there was one, writes it to DIR/pgpass (mode 0600, DIR must be
# private) and exports PGPASSFILE, which libpq (psql, pg_dump, pg_restore) reads; PGPASSWORD is
# unset then so that the URL's password wins, as it would in the URL. A key=value connection string
# with a password is refused: put its password in PGPASSWORD or ~/.pgpass instead.

# %XX escapes of a URL component, decoded (backslashes are kept as they are)
url_decode() {
  local s=${1//\\/\\\\}
  printf '%b' "${s//%/\\x}"
}

# a pgpass field: backslash and colon escaped
pgpass_field() {
  local s=${1//\\/\\\\}
  printf '%s' "${s//:/\\:}"
}

private_url() {
  local url=$1 dir=$2 password="" found=0
  if ! [[ $url =~ ^postgres(ql)?:// ]]; then
    if [[ $url =~ (^|[[:space:]])password[[:space:]]*= ]]; then
      echo "$(basename "$0"): a connection string with a password would put it on a command line;" \
        "use a postgresql:// URL, or PGPASSWORD / ~/.pgpass" >&2
      exit 2
    fi
    db_url=$url
    return
  fi
  local scheme=${url%%://*}:// rest=${url#*://}
  # authority: up to the first / or ?
  local authority=${rest%%[/?]*}
  local tail=${rest:${#authority}}
  if [[ $authority == *@* ]]; then
    local userinfo=${authority%@*} host=${authority##*@}
    if [[ $userinfo == *:* ]]; then
      password=$(url_decode "${userinfo#*:}")
      found=1
      userinfo=${userinfo%%:*}
    fi
    authority="$userinfo@$host"
  fi
  # a password=... query parameter
  if [[ $tail == *\?* ]]; then
    local path=${tail%%\?*} query=${tail#*\?} kept=() param
    local IFS='&'
    for param in $query; do
      if [[ $param == password=* ]]; then
        password=$(url_decode "${param#password=}")
        found=1
      elif [ -n "$param" ]; then
        kept+=("$param")
      fi
    done
    tail=$path
    [ "${#kept[@]}" -eq 0 ] || tail="$path?${kept[*]}"
    unset IFS
  fi
  db_url="$scheme$authority$tail"
  if [ "$found" = 1 ]; then
    (umask 077 && printf '*:*:*:*:%s\n' "$(pgpass_field "$password")" >"$dir/pgpass")
    export PGPASSFILE="$dir/pgpass"
    unset PGPASSWORD
  fi
}
