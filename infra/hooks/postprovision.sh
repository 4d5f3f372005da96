#!/bin/sh
# azd postprovision hook (POSIX sh; postprovision.ps1 is the Windows twin and does the same).
#
# Grants WaveGuard's managed identity the Microsoft Graph application permissions this
# environment needs. Which ones: WAVEGUARD_GRAPH_PERMISSIONS, an output of infra/main.bicep that
# main.bicep selected from infra/graph-permissions.json; their app role ids: the same file.
#
# It grants them with the Azure CLI (az rest, POST /servicePrincipals/{id}/appRoleAssignments)
# when the account az is signed in with may: Privileged Role Administrator, Global Administrator,
# or a principal holding AppRoleAssignment.ReadWrite.All. Otherwise it prints the exact commands
# for an administrator and still exits 0: the infrastructure is complete, and WaveGuard's Graph
# calls answer 403 until the permissions are granted.
#
#   azd env set WAVEGUARD_GRAPH_GRANT print   never try; only print the commands
#
# azd hands the hook every value of the environment (.azure/<env>/.env), Bicep outputs included.
set -eu

GRAPH_APP_ID=00000003-0000-0000-c000-000000000000
GRAPH=https://graph.microsoft.com/v1.0
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
catalog="$here/../graph-permissions.json"

mi=${WAVEGUARD_IDENTITY_PRINCIPAL_ID:-}
wanted=${WAVEGUARD_GRAPH_PERMISSIONS:-}
if [ -z "$mi" ] || [ -z "$wanted" ]; then
  echo "postprovision: WAVEGUARD_IDENTITY_PRINCIPAL_ID or WAVEGUARD_GRAPH_PERMISSIONS is not set;" >&2
  echo "run this hook through azd (azd provision / azd up), which passes the deployment's outputs." >&2
  exit 1
fi
# An object id is a GUID: anything else (say, shell text) is refused before it reaches a command.
if ! printf '%s' "$mi" | grep -Eq '^[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$'; then
  echo "postprovision: WAVEGUARD_IDENTITY_PRINCIPAL_ID is not a GUID; refusing to use it." >&2
  exit 1
fi

case $(printf '%s' "${WAVEGUARD_GRAPH_GRANTED_BY_DEPLOYMENT:-false}" | tr '[:upper:]' '[:lower:]') in
  true)
    echo "Graph permissions: granted by the deployment itself (grantGraphPermissions=true)."
    exit 0
    ;;
esac

# app_role_id NAME: the appRoleId graph-permissions.json records for NAME. The file keeps one
# entry per line (tests/unit/test_infra_matches_code.py checks it), so sed reads it without jq.
app_role_id() {
  name_re=$(printf '%s' "$1" | sed 's/[].[*^$\/]/\\&/g')
  sed -n "s/^ *{\"permission\": \"$name_re\", \"appRoleId\": \"\([0-9a-f-]*\)\".*/\1/p" "$catalog"
}

# "name=appRoleId" for each wanted permission.
pairs=""
for name in $wanted; do
  id=$(app_role_id "$name")
  if [ -z "$id" ]; then
    echo "postprovision: $name is not in infra/graph-permissions.json (main.bicep and the file disagree)." >&2
    exit 1
  fi
  pairs="$pairs $name=$id"
done

# without LIST PAIR: LIST less PAIR.
without() {
  rest=""
  for item in $1; do
    [ "$item" = "$2" ] || rest="$rest $item"
  done
  printf '%s' "$rest"
}

print_admin_commands() {
  echo ""
  echo "WaveGuard's managed identity still needs these Microsoft Graph application permissions:"
  echo ""
  for pair in $1; do
    printf '  %-40s app role id %s\n' "${pair%%=*}" "${pair#*=}"
  done
  echo ""
  echo "A Privileged Role Administrator (or Global Administrator) grants them with the Azure CLI,"
  echo "signed in to tenant ${AZURE_TENANT_ID:-<tenant id>} (az login --tenant ${AZURE_TENANT_ID:-<tenant id>}):"
  echo ""
  echo "  MI=$mi"
  echo "  GRAPH_SP=\$(az ad sp show --id $GRAPH_APP_ID --query id -o tsv)"
  for pair in $1; do
    echo "  az rest --method post --url \"$GRAPH/servicePrincipals/\$MI/appRoleAssignments\" --headers Content-Type=application/json --body \"{\\\"principalId\\\":\\\"\$MI\\\",\\\"resourceId\\\":\\\"\$GRAPH_SP\\\",\\\"appRoleId\\\":\\\"${pair#*=}\\\"}\"   # ${pair%%=*}"
  done
  echo ""
  echo "Nothing needs redeploying: WaveGuard's next Graph tokens carry the permissions (managed"
  echo "identity tokens are cached for up to 24 hours). 'azd hooks run postprovision' checks them again;"
  echo "infra/README.md, 'When you are not an administrator', says more."
}

give_up() {
  echo "WARNING: Graph permissions not granted: $1"
  print_admin_commands "$2"
  exit 0
}

case ${WAVEGUARD_GRAPH_GRANT:-try} in
  print) give_up "WAVEGUARD_GRAPH_GRANT=print." "$pairs" ;;
esac

command -v az >/dev/null 2>&1 || give_up "the Azure CLI (az) is not installed." "$pairs"
az_tenant=$(az account show --query tenantId -o tsv 2>/dev/null) ||
  give_up "az is not signed in ('azd auth login' does not sign in az; run 'az login')." "$pairs"
if [ -n "${AZURE_TENANT_ID:-}" ] && [ "$az_tenant" != "$AZURE_TENANT_ID" ]; then
  give_up "az is signed in to tenant $az_tenant, azd deployed to $AZURE_TENANT_ID." "$pairs"
fi
graph_sp=$(az ad sp show --id "$GRAPH_APP_ID" --query id -o tsv 2>/dev/null) ||
  give_up "could not read the Microsoft Graph service principal." "$pairs"

# The ids in graph-permissions.json must be the tenant's own Graph app roles of those names: a
# wrong id would grant another permission, so a mismatch stops the hook before any grant.
roles=$(az ad sp show --id "$GRAPH_APP_ID" --query "appRoles[].[value,id]" -o tsv 2>/dev/null) ||
  give_up "could not read Microsoft Graph's app roles." "$pairs"
for pair in $pairs; do
  actual=$(printf '%s\n' "$roles" | awk -F '\t' -v name="${pair%%=*}" '$1 == name { print $2 }')
  if [ "$actual" != "${pair#*=}" ]; then
    echo "postprovision: infra/graph-permissions.json gives ${pair%%=*} the app role id ${pair#*=}," >&2
    echo "but Microsoft Graph's is '${actual:-<none>}'; fix the file. Nothing was granted." >&2
    exit 1
  fi
done

# A new managed identity can take a minute to appear in Microsoft Graph: retry while it is missing.
existing=""
attempt=1
while :; do
  if existing=$(az rest --method get \
    --url "$GRAPH/servicePrincipals/$mi/appRoleAssignments?\$top=999" \
    --query "value[?resourceId=='$graph_sp'].appRoleId" -o tsv 2>/dev/null); then
    break
  fi
  [ "$attempt" -ge 6 ] && give_up "could not read the identity's current app role assignments." "$pairs"
  attempt=$((attempt + 1))
  sleep 10
done

missing=""
for pair in $pairs; do
  case " $(printf '%s' "$existing" | tr '\n' ' ') " in
    *" ${pair#*=} "*) echo "Graph permission ${pair%%=*}: already granted" ;;
    *) missing="$missing $pair" ;;
  esac
done

remaining=$missing
for pair in $missing; do
  body="{\"principalId\":\"$mi\",\"resourceId\":\"$graph_sp\",\"appRoleId\":\"${pair#*=}\"}"
  if out=$(az rest --method post --url "$GRAPH/servicePrincipals/$mi/appRoleAssignments" \
    --headers Content-Type=application/json --body "$body" 2>&1); then
    echo "Graph permission ${pair%%=*}: granted"
  else
    case $out in
      *"already exists"*) echo "Graph permission ${pair%%=*}: already granted" ;;
      *Authorization_RequestDenied* | *"Insufficient privileges"* | *Forbidden*)
        give_up "the signed-in account may not grant Microsoft Graph application permissions." "$remaining"
        ;;
      *) echo "$out" >&2; give_up "granting ${pair%%=*} failed." "$remaining" ;;
    esac
  fi
  remaining=$(without "$remaining" "$pair")
done
echo "Graph permissions: all $(printf '%s' "$wanted" | wc -w | tr -d ' ') in place."
